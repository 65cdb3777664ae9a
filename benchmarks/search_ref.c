/* C reference of the EINet search engine (Paper B, Table I: "we implement this part in C ...
 * through the ctypes library"). Same semantics, operation order and tie-breaking as the Numba
 * kernels in lib/earlyexit/search.py, uniform preemption distribution only.
 *
 * Build: cc -O2 -shared -fPIC search_ref.c -o libsearch_ref.so (earlyexit.search_bench does it).
 * Plans are arrays of n bytes, 1 = execute that exit's branch.
 */
#include <stdlib.h>
#include <string.h>

/* T = sum(Tc) + sum(Tb), Algorithm 1 line 3. */
static double total_time(const double *tc, const double *tb, int n) {
    double sc = 0.0, sb = 0.0;
    for (int k = 0; k < n; k++) sc += tc[k];
    for (int k = 0; k < n; k++) sb += tb[k];
    return sc + sb;
}

/* Algorithm 1 (CAL_EXP), Eq. (5), with T given. */
static double plan_value(const double *tc, const double *tb, const double *conf,
                         const unsigned char *plan, int n, double c0, double total) {
    double e = 0.0, c = c0, t0 = 0.0, t1 = 0.0;
    for (int k = 0; k < n; k++) {
        t1 += tc[k];
        if (plan[k]) {
            t1 += tb[k];
            e += c * ((t1 - t0) / total);
            c = conf[k];
            t0 = t1;
        }
    }
    return e + c * ((total - t0) / total);
}

/* Algorithm 1: expectation of one plan under uniform preemption on [0, T]. */
double cal_exp(const double *tc, const double *tb, const double *conf,
               const unsigned char *plan, int n, double c0) {
    return plan_value(tc, tb, conf, plan, n, c0, total_time(tc, tb, n));
}

/* Algorithm 2: enumerate the 2^m plans over exits 0..m-1 (later bits 0), then n-m greedy steps
 * adding the best not-yet-selected exit (any of them); keeps the best plan seen (strict >).
 * Writes it to best_plan (n bytes) and returns its expectation; -1.0 if out of memory. */
double hybrid_search(const double *tc, const double *tb, const double *conf, int n, int m,
                     double c0, unsigned char *best_plan) {
    double total = total_time(tc, tb, n), best = -1.0 / 0.0;
    long best_mask = 0;
    unsigned char *plan = calloc((size_t)n, 1);
    if (plan == NULL) return -1.0;
    for (long mask = 0; mask < (1L << m); mask++) {
        for (int k = 0; k < m; k++) plan[k] = (mask >> k) & 1;
        double e = plan_value(tc, tb, conf, plan, n, c0, total);
        if (e > best) { best = e; best_mask = mask; }
    }
    for (int k = 0; k < m; k++) plan[k] = (best_mask >> k) & 1;
    memcpy(best_plan, plan, (size_t)n);
    for (int step = 0; step < n - m; step++) {
        int pick = -1;
        double pick_e = -1.0 / 0.0;
        for (int k = 0; k < n; k++) {
            if (!plan[k]) {
                plan[k] = 1;
                double e = plan_value(tc, tb, conf, plan, n, c0, total);
                plan[k] = 0;
                if (e > pick_e) { pick_e = e; pick = k; }
            }
        }
        plan[pick] = 1;
        if (pick_e > best) { best = pick_e; memcpy(best_plan, plan, (size_t)n); }
    }
    free(plan);
    return best;
}
