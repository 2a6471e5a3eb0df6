// Tile configurations of the fused flash kernel: one kernel template, per-architecture tile shapes.
//
// A block owns kBlockM query rows of one (sequence, head) and streams K/V in tiles of kBlockN keys.
// Thread (ty, tx) of kThreadsY x kThreadsX owns query rows ty*Rm .. ty*Rm+Rm-1, the scores of keys
// tx + kThreadsX*n (n < Rn) and the output columns g*kThreadsX*Vw + tx*Vw + e (g < Rd, e < Vw). Q
// stays in shared memory (fp32, pre-scaled); K and V pass through two ping-pong chunk buffers
// (kKChunk columns of a K tile, kVChunk rows of a V tile), fetched into registers one chunk ahead
// so global latency overlaps the FMAs; P goes through shared memory between the two products.
#pragma once

#include "flash_registry.hpp"

namespace qwen3vl::detail::flash {

template <int Ty, int Tx, int Rm, int Rn, int HeadDim, int Dq, int Kc, int Jc, int Vw, int Rd,
          int MinBlocks, int MinBlocksSm70>
struct TileShape {
  static constexpr int kThreadsY = Ty, kThreadsX = Tx, kThreads = Ty * Tx;
  static constexpr int kRowsPerThread = Rm, kKeysPerThread = Rn;
  static constexpr int kBlockM = Ty * Rm, kBlockN = Tx * Rn;
  static constexpr int kHeadDim = HeadDim;  // 0: head_dim at run time (<= kDq)
  static constexpr int kDq = Dq;            // staged Q/K columns (zero padded past head_dim)
  static constexpr int kKChunk = Kc;        // K columns per chunk
  static constexpr int kVChunk = Jc;        // V rows per chunk
  static constexpr int kVecWidth = Vw, kColGroups = Rd;
  static constexpr int kDo = Tx * Vw * Rd;  // output columns covered (zero padded past head_dim)
  // Blocks per SM the register budget is cut for: before Volta (where shared memory allows 2
  // blocks of the compact tiles) and on sm_70+ (up to 227 KB of shared memory per SM).
  static constexpr int kMinBlocks = MinBlocks;
  static constexpr int kMinBlocksSm70 = MinBlocksSm70;

  // Shared memory, in floats. Q rows get 4 floats of skew per thread row group and K/V/P rows 4
  // floats of padding, so that the 16-byte accesses of a warp fall in distinct banks.
  static constexpr int kQLd = kDq;
  static constexpr int kKLd = kKChunk + 4;
  static constexpr int kVLd = kDo + 4;
  static constexpr int kPLd = kBlockM + 4;
  static constexpr int kQFloats = kBlockM * kQLd + Ty * 4;
  static constexpr int kPFloats = kBlockN * kPLd;
  static constexpr int kKChunkFloats = kBlockN * kKLd;
  static constexpr int kVChunkFloats = kVChunk * kVLd;
  static constexpr int kChunkFloats = kKChunkFloats > kVChunkFloats ? kKChunkFloats : kVChunkFloats;
  static constexpr int kSmemBytes = 4 * (kQFloats + kPFloats + 2 * kChunkFloats);

  static_assert(32 % Tx == 0, "a row's lanes must sit in one warp (shuffle reductions)");
  static_assert(Rm % 4 == 0, "P is written and read as float4 over a thread's rows");
  static_assert(Kc % 8 == 0 && Dq % Kc == 0, "K chunks: (Kc + 4) / 4 odd keeps rows bank-free");
  static_assert(kBlockN % Jc == 0, "V chunks tile the key block");
  static_assert(Vw == 1 || Vw == 2 || Vw == 4, "vector width of the output columns");
  static_assert(HeadDim == 0 || (HeadDim <= kDo && HeadDim <= kDq), "tiles cover head_dim");
};

template <TileConfig C, int D>
struct Tiles;

constexpr TileConfig kG = TileConfig::kGeneric, kC = TileConfig::kCompact;

//                                     Ty  Tx Rm Rn  D   Dq  Kc  Jc Vw Rd MinBlocks (<sm_70, sm_70+)
// Generic: 64 query rows x 64 keys, 128 threads (256 for D > 128), ~70-100 KB of shared memory.
// clang-format off
template <> struct Tiles<kG, 64>  : TileShape<8, 16, 8, 4, 64, 64, 32, 32, 4, 1, 2, 2> {};
template <> struct Tiles<kG, 72>  : TileShape<8, 16, 8, 4, 72, 72, 24, 16, 1, 5, 2, 2> {};
template <> struct Tiles<kG, 80>  : TileShape<8, 16, 8, 4, 80, 80, 40, 32, 1, 5, 2, 2> {};
template <> struct Tiles<kG, 96>  : TileShape<8, 16, 8, 4, 96, 96, 32, 16, 2, 3, 2, 2> {};
template <> struct Tiles<kG, 128> : TileShape<8, 16, 8, 4, 128, 128, 32, 16, 4, 2, 2, 2> {};
template <> struct Tiles<kG, 256> : TileShape<16, 16, 4, 4, 256, 256, 32, 8, 4, 4, 1, 1> {};
template <> struct Tiles<kG, 0>   : TileShape<16, 16, 4, 4, 0, 256, 32, 8, 1, 16, 1, 1> {};
// Compact (sm_61): 64 x 32 tiles (32 x 32 for D > 128), 128 threads, <= 48 KB per block; 3 blocks
// per SM on sm_70+ (faster at D=128 than 2 blocks, despite a few spilled registers).
template <> struct Tiles<kC, 64>  : TileShape<16, 8, 4, 4, 64, 64, 32, 16, 4, 2, 2, 3> {};
template <> struct Tiles<kC, 72>  : TileShape<16, 8, 4, 4, 72, 72, 24, 8, 1, 9, 2, 3> {};
template <> struct Tiles<kC, 80>  : TileShape<16, 8, 4, 4, 80, 80, 40, 16, 1, 10, 2, 3> {};
template <> struct Tiles<kC, 96>  : TileShape<16, 8, 4, 4, 96, 96, 32, 8, 4, 3, 2, 3> {};
template <> struct Tiles<kC, 128> : TileShape<16, 8, 4, 4, 128, 128, 16, 4, 4, 4, 2, 3> {};
template <> struct Tiles<kC, 256> : TileShape<8, 16, 4, 2, 256, 256, 16, 2, 4, 4, 2, 3> {};
template <> struct Tiles<kC, 0>   : TileShape<8, 16, 4, 2, 0, 256, 16, 2, 1, 16, 2, 3> {};
// clang-format on

}  // namespace qwen3vl::detail::flash
