/* harness.h: a tiny assert harness for the host-native tests: CHECK* record failures, RUN runs a test. */
#ifndef HARNESS_H
#define HARNESS_H
#include <math.h>
#include <stdio.h>

static int harness_failures, harness_checks;

#define CHECK(cond) do { harness_checks++; if (!(cond)) { harness_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); harness_checks++; \
    if (_a != _b) { harness_failures++; fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
    __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double _a = (double)(a), _b = (double)(b); harness_checks++; \
    if (!(fabs(_a - _b) <= (tol))) { harness_failures++; fprintf(stderr, "%s:%d: %s ~ %s failed: %g vs %g\n", \
    __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)
#define RUN(test) do { int _before = harness_failures; test(); \
    printf("%s %s\n", harness_failures == _before ? "PASS" : "FAIL", #test); } while (0)
#define HARNESS_RESULT() (printf("%d checks, %d failed\n", harness_checks, harness_failures), \
    harness_failures ? 1 : 0)

#endif
