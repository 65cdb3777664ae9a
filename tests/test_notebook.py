"""A notebook refuses parameters papermill injects that it does not declare."""

import nbformat
import papermill as pm
import pytest

from earlyexit.core import notebook

PARAMS = 'profile = "cpu"\nlams: list = [0.5]  # thresholds\nseed = 0\n'


def test_nothing_injected_is_nothing_unknown():
    assert notebook.unknown_parameters(["", PARAMS, "x = seed + 1"]) == set()


def test_an_injected_name_the_parameters_cell_does_not_declare_is_unknown():
    injected = '# Parameters\nprofile = "smoke"\nlam = 0.9\n'
    assert notebook.unknown_parameters(["", PARAMS, injected, "check()"]) == {"lam"}
    assert notebook.unknown_parameters(["", PARAMS, "# Parameters\nlams = [0.1]\n"]) == set()


def _notebook(tmp_path):
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    check = nbformat.v4.new_code_cell("from earlyexit.core.notebook import check_parameters\n\ncheck_parameters()")
    nb = nbformat.v4.new_notebook(cells=[params, check, nbformat.v4.new_code_cell("print(profile, seed)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_papermill_with_a_misspelt_parameter_fails_naming_it(tmp_path):
    path = _notebook(tmp_path)
    with pytest.raises(pm.PapermillExecutionError, match=r"unknown parameter\(s\) \['lam'\]"):
        pm.execute_notebook(path, tmp_path / "out.ipynb", parameters={"lam": 0.9}, progress_bar=False)
    ran = pm.execute_notebook(path, tmp_path / "out.ipynb", parameters={"seed": 3}, progress_bar=False)
    assert ran.cells[-1].outputs[0]["text"] == "cpu 3\n"
