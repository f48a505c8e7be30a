#include "core/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace metamath {

bool keep_freed_memory() {
  const char* env = std::getenv("METAMATH_MALLOC");
  if (env && std::strcmp(env, "default") == 0) return false;
  // glibc caps M_MMAP_THRESHOLD at 32 MiB, so mmap is switched off instead (M_MMAP_MAX 0); a
  // thread arena that cannot grow falls back to the main arena. Trim the heap top only past 2 GiB
  // free, and grow it in 256 MiB steps.
  bool ok = mallopt(M_MMAP_MAX, 0) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, 0x7fffffff) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 256 << 20) == 1 && ok;
  return ok;
}

}  // namespace metamath
