#pragma once
// Process-wide allocator setting for tensor work.
//
// libtorch's CPU tensors come from malloc, and glibc serves every block over 32 MiB with a fresh
// mmap that munmap returns on free: each training step then faults in its activations and
// gradients page by page again (measured on the PyTorch reference step of the 110M model at
// 2 x 512 tokens: 421,000 minor faults and 3.1 s of system time per step). keep_freed_memory()
// makes glibc serve large blocks from its heap and keep freed memory for reuse (no mmap, no
// trimming), so after the first step the same pages are reused: 16,000 faults per step, with the
// same peak RSS. Memory is not handed back to the system until the process exits.
//
// Call it once at startup, before other threads start. METAMATH_MALLOC=default skips it.
namespace metamath {

// Returns true when the setting was applied.
bool keep_freed_memory();

}  // namespace metamath
