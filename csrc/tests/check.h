// check.h - the C++ tests' assertion: CHECK counts every check and prints the first failures
// with their context; check_summary prints the totals and gives the exit code.
#pragma once

#include <cstdio>

inline int g_checks = 0, g_failures = 0;

#define CHECK(cond, ...)                                                \
    do {                                                                \
        g_checks++;                                                     \
        if (!(cond) && ++g_failures <= 30) {                            \
            std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            std::printf(__VA_ARGS__);                                   \
            std::printf("\n");                                          \
        }                                                               \
    } while (0)

// "<name>: all N checks passed" and 0, or "<name>: F of N checks FAILED" and 1.
inline int check_summary(const char * name) {
    if (g_failures) {
        std::printf("%s: %d of %d checks FAILED\n", name, g_failures, g_checks);
        return 1;
    }
    std::printf("%s: all %d checks passed\n", name, g_checks);
    return 0;
}
