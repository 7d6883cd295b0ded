# Cross-compiling for 64-bit ARM Linux (Raspberry Pi 5 and other aarch64 boards) with Debian's
# g++-aarch64-linux-gnu; the C++ tests run under qemu-user (scripts/ci_arm.sh):
#
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DLOOPLM_PYTHON=OFF -DLOOPLM_TESTS=ON
#   cmake --build build-arm -j 2 && QEMU_CPU=cortex-a76 ctest --test-dir build-arm
#
# CTest runs every test executable through CMAKE_CROSSCOMPILING_EMULATOR; qemu-aarch64 reads
# the CPU model from QEMU_CPU (default "max", which has every feature).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # host tools (python3 for the test fixtures)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64;-L;/usr/aarch64-linux-gnu")
