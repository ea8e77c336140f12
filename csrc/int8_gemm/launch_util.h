// The launchers' host helpers (common/launch_util.h) in the int8 GEMM's namespace.
#pragma once
#include "common/launch_util.h"

namespace qtorch_int8 {

using qtorch_ptx::ceil_div;
using qtorch_ptx::ensure_max_dynamic_smem;

}  // namespace qtorch_int8
