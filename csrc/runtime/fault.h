// runtime/fault.h - fault injection for the tests: a named stage, once armed, throws
// std::bad_alloc (an allocation failure, MemoryError in Python) at its n-th pass, so tests can
// fail a call at each of its stages and check that it leaves its state as it was.
// Disarmed (always, outside tests) a stage costs one relaxed atomic load.
#pragma once

#include <cstdint>
#include <string>

namespace looplm::fault {

// Arms `stage`: its nth pass (1 = the next) throws std::bad_alloc, once. nth <= 0 disarms.
void arm(const std::string & stage, int64_t nth);

// Passes through `stage`; throws std::bad_alloc when this is the armed stage's chosen pass.
void point(const char * stage);

}  // namespace looplm::fault
