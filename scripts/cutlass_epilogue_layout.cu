// Prints, on the host, which (channel row, token) each fragment element of the sm90 CUTLASS
// epilogue holds for a few threads of the engine's configurations (every 2:4 int8 one, one each
// of dense int8, 2:4 fp8, dense fp8): the layout the SwiGLU epilogue (SwigluStore in
// src/cuda/cutlass/gemm_cutlass_impl.cuh) relies on -- per group of 4 elements, rows r (tokens
// n, n + 1) then r + 8; lanes l and l ^ 4 rows r and r ^ 1. Needs no GPU:
//   nvcc -std=c++17 --expt-relaxed-constexpr -arch=sm_90a -I src -I include \
//     -I .deps/cutlass/include scripts/cutlass_epilogue_layout.cu -o /tmp/layout && /tmp/layout
#include <cstdio>

#include "cuda/cutlass/gemm_cutlass_impl.cuh"

using namespace cute;
using namespace slidesparse::cuda;

template <class Cfg>
void print_layout(const char* name) {
  using K = cutlass_impl::Kernel<Cfg, true>;
  using CE = typename K::CollectiveEpilogue;
  using Tile = typename Cfg::TileShape;
  using EpiTile = typename CE::EpilogueTile;
  std::printf("%s: tile ", name);
  print(Tile{});
  std::printf(", epilogue subtile ");
  print(EpiTile{});
  std::printf("\n");
  typename K::CollectiveMainloop::TiledMma mma{};
  auto atom = make_tiled_copy_C_atom(typename CE::CopyAtomC{}, mma);
  auto r2s = make_tiled_copy_S(Copy_Atom<typename CE::CopyOpR2S, cutlass::bfloat16_t>{}, atom);
  auto coords = make_identity_tensor(take<0, 2>(Tile{}));
  for (int t : {0, 1, 4, 32}) {
    auto tc = r2s.get_slice(t).partition_S(flat_divide(coords, EpiTile{}));
    std::printf("  thread %2d, subtile (0, 0):", t);
    auto sub = tc(_, _, _, 0, 0);
    for (int i = 0; i < size(sub); ++i)
      std::printf(" (%d,%d)", int(get<0>(sub(i))), int(get<1>(sub(i))));
    std::printf("\n");
  }
}

int main() {
  using cutlass_impl::Sched;
  print_layout<cutlass_impl::Cfg<int8_t, true, 128, 128, 128, 2, Sched::kPingpong>>(
      "pingpong 128x128x128");
  print_layout<cutlass_impl::Cfg<int8_t, true, 128, 256, 128, 2, Sched::kCooperative>>(
      "cooperative 128x256x128");
  print_layout<cutlass_impl::Cfg<int8_t, true, 128, 128, 256, 2, Sched::kPingpong>>(
      "pingpong 128x128x256");
  print_layout<cutlass_impl::Cfg<int8_t, true, 256, 128, 256, 2, Sched::kCooperative>>(
      "cooperative 256x128x256");
  print_layout<cutlass_impl::Cfg<int8_t, false, 128, 256, 128, 2, Sched::kCooperative>>(
      "dense int8 cooperative 128x256x128");
  print_layout<
      cutlass_impl::Cfg<cutlass::float_e4m3_t, true, 128, 128, 256, 1, Sched::kCooperative>>(
      "2:4 fp8 cooperative 128x128x256 cluster 1");
  print_layout<cutlass_impl::Cfg<cutlass::float_e4m3_t, false, 128, 128, 128, 2, Sched::kPingpong>>(
      "dense fp8 pingpong 128x128x128");
  return 0;
}
