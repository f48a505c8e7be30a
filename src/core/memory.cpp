#include "core/memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace metamath {

namespace {
constexpr std::size_t kHugePage = kHugePageBytes;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }
}  // namespace

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

bool huge_pages_wanted() {
  const char* env = std::getenv("METAMATH_HUGE_PAGES");
  if (!env || std::strcmp(env, "on") == 0) return true;
  if (std::strcmp(env, "off") == 0) return false;
  fail("METAMATH_HUGE_PAGES={}: expected on or off", env);
}

void* alloc_huge_pages(std::size_t bytes) {
  const std::size_t size = round_up(bytes == 0 ? 1 : bytes, kHugePage);
  // Map one huge page more than needed, then cut the mapping down to a 2 MiB aligned start.
  void* raw =
      ::mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t start = round_up(base, kHugePage);
  if (start > base) ::munmap(raw, start - base);
  const std::uintptr_t end = base + size + kHugePage;
  if (end > start + size) ::munmap(reinterpret_cast<void*>(start + size), end - start - size);
  ::madvise(reinterpret_cast<void*>(start), size, MADV_HUGEPAGE);  // advice: failure is harmless
  return reinterpret_cast<void*>(start);
}

void free_huge_pages(void* p, std::size_t bytes) {
  if (p) ::munmap(p, round_up(bytes == 0 ? 1 : bytes, kHugePage));
}

}  // namespace metamath
