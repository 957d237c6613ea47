// cuSPARSELt is loaded at run time (src/cuda/cusparselt_dl.cpp defines the cusparseLt* entry
// points the project uses and forwards them to the library).
#pragma once

#include "slidesparse/status.h"

namespace slidesparse::cuda {

// Ok once the library is loaded; else kUnsupported with one line saying what was tried and how
// to fix it. Loads at most once per process.
Status cusparselt_load();

}  // namespace slidesparse::cuda
