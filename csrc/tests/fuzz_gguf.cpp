// fuzz_gguf - libFuzzer target: arbitrary bytes as a GGUF file.
//
// The bytes go to a memfd (GGUFFile takes a path: /proc/self/fd/N); parsing and model
// validation must end in a GGUFError or succeed, and a model that loads must evaluate and
// tokenize (exercise.h). Any other exception, a sanitizer report, a huge allocation
// (-malloc_limit_mb) or a slow input (-timeout) is a finding. Build: -DLOOPLM_FUZZ=ON with
// clang++ (csrc/tests/CMakeLists.txt); run: scripts/ci_robustness.sh.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "exercise.h"
#include "model/context.h"

namespace {

int memfd() {
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("fuzz.gguf", MFD_CLOEXEC);
        if (fd < 0) {
            std::perror("memfd_create");
            std::abort();
        }
    }
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const int fd = memfd();
    if (ftruncate(fd, 0) != 0) std::abort();
    for (size_t done = 0; done < size;) {
        const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        if (n <= 0) std::abort();
        done += static_cast<size_t>(n);
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
        looplm::Model m(path);
        looplm::exercise_model(m);
    } catch (const looplm::GGUFError &) {
        // the expected outcome for a bad file
    } catch (const std::exception & e) {
        std::fprintf(stderr, "fuzz_gguf: unexpected exception (not a GGUFError): %s\n", e.what());
        std::abort();
    }
    return 0;
}
