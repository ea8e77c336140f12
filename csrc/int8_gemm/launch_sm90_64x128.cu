// Instantiates the Hopper int8 GEMM for the 64x128 tile (see sm90_tiles.cuh).
#include "int8_gemm/sm90_tiles.cuh"

namespace qtorch_int8 {
template cudaError_t launch_sm90_tile<Sm90Tile64x128>(const GemmProblem&, int, int, cudaStream_t);
}  // namespace qtorch_int8
