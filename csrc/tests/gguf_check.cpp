// gguf_check - loads each GGUF named on the command line with looplm::Model and prints
// "<path>: ok" (after a short evaluation, see exercise.h) or "<path>: error: <message>".
//
// Used to run the hostile-file corpus (tests/bad_gguf) under AddressSanitizer and
// UndefinedBehaviorSanitizer (scripts/ci_robustness.sh). Exit code: 0 when every file either
// loaded and ran or was refused with a GGUFError; 3 when any other exception escaped (a
// hostile file must only ever produce a GGUFError); a sanitizer report aborts the process.
#include <cstdio>
#include <exception>
#include <string>

#include "exercise.h"
#include "model/context.h"

int main(int argc, char ** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: gguf_check FILE.gguf...\n");
        return 2;
    }
    int ok = 0, refused = 0, unexpected = 0;
    for (int i = 1; i < argc; i++) {
        const std::string path = argv[i];
        try {
            looplm::Model m(path);
            looplm::exercise_model(m);
            std::printf("%s: ok\n", path.c_str());
            ok++;
        } catch (const looplm::GGUFError & e) {
            std::printf("%s: error: %s\n", path.c_str(), e.what());
            refused++;
        } catch (const std::exception & e) {
            std::printf("%s: UNEXPECTED exception: %s\n", path.c_str(), e.what());
            unexpected++;
        }
    }
    std::printf("gguf_check: %d ok, %d refused, %d unexpected exceptions\n", ok, refused, unexpected);
    return unexpected ? 3 : 0;
}
