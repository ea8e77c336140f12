// Hopper launcher: picks the tile configuration of `kernel` (instantiated in launch_sm90_<tile>.cu).
#include "int8_gemm/sm90_tiles.cuh"

namespace qtorch_int8 {

cudaError_t launch_sm90(const GemmProblem& problem, Kernel kernel, int split_k, int num_sms, cudaStream_t stream) {
  switch (kernel) {
    case Kernel::kSm90_128x256: return launch_sm90_tile<Sm90Tile128x256>(problem, split_k, num_sms, stream);
    case Kernel::kSm90_128x128: return launch_sm90_tile<Sm90Tile128x128>(problem, split_k, num_sms, stream);
    case Kernel::kSm90_64x256: return launch_sm90_tile<Sm90Tile64x256>(problem, split_k, num_sms, stream);
    case Kernel::kSm90_64x128: return launch_sm90_tile<Sm90Tile64x128>(problem, split_k, num_sms, stream);
    case Kernel::kSm90pp_128x128: return launch_sm90_tile<Sm90TilePP128x128>(problem, split_k, num_sms, stream);
    case Kernel::kSm90pp_64x256: return launch_sm90_tile<Sm90TilePP64x256>(problem, split_k, num_sms, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace qtorch_int8
