// Tile visiting order shared by the GEMM kernels (torch-free).
#pragma once

namespace qtorch_int8 {

// Linear tile index t -> (tm, tn) on a tiles_m x tiles_n grid: groups of 8 tile rows are walked column by column, so
// CTAs running at the same time share activation rows and weight columns in L2.
__device__ __forceinline__ void grouped_tile_coords(int t, int tiles_m, int tiles_n, int& tm, int& tn) {
  constexpr int kGroup = 8;
  const int per_group = kGroup * tiles_n;
  const int group = t / per_group;
  const int first = group * kGroup;
  const int rows = min(tiles_m - first, kGroup);
  const int r = t - group * per_group;
  tm = first + r % rows;
  tn = r / rows;
}

}  // namespace qtorch_int8
