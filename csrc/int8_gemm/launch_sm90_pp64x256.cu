// Instantiates the Hopper int8 GEMM for the ping-pong 64x256 tile (see sm90_tiles.cuh).
#include "int8_gemm/sm90_tiles.cuh"

namespace qtorch_int8 {
template cudaError_t launch_sm90_tile<Sm90TilePP64x256>(const GemmProblem&, int, int, cudaStream_t);
}  // namespace qtorch_int8
