// xpcnn: NCHW cross-correlation kernels (notes eq. 17, 18, 20; docs/equations.md; the GPU section of README.md).
//
// Compiled at run time by CuPy (cupy.RawModule with name_expressions, see xpcnn/ops/cuda.py),
// checked without a GPU by NVRTC or nvcc for sm_90 (xpcnn/tools/cuda_compile.py), and compiled
// for the host by tests/cuda_host_shim.cpp, which emulates the grid to check the index
// arithmetic on the CPU.  The tile constants below come from cuda.py as -D options, so the
// launch plans and the kernels cannot disagree.
//
// Shapes (NCHW, all tensors contiguous):
//   x  (N, C, H, W)      input          k  (O, C, KH, KW)  kernels
//   y  (N, O, OH, OW)    output         OH = (H + 2 ph - KH) / sh + 1, likewise OW
// Padding may be negative (a crop): the input gradient runs the forward kernel with padding
// KH - 1 - ph, which is negative when ph >= KH.
//
// Template parameters: T is float or double; KH, KW > 0 specialise the kernel size (3x3 and
// 5x5 are instantiated), KH = KW = 0 is the general fallback that reads kh, kw at run time.
// Every element offset is computed in 64 bits; grid.y and grid.z stay within 65535 (the
// forward kernel loops over output-channel blocks when grid.y is capped).

#if !defined(XPCNN_FWD_BX) || !defined(XPCNN_FWD_BY) || !defined(XPCNN_FWD_RY) || \
    !defined(XPCNN_FWD_SMALL_BX) || !defined(XPCNN_FWD_SMALL_BY) || !defined(XPCNN_FWD_SMALL_RY) || \
    !defined(XPCNN_FWD_OCB) || !defined(XPCNN_GRAD_THREADS) || !defined(XPCNN_GRAD_MAXT)
#error "compile with the -D options of xpcnn.ops.cuda.OPTIONS"
#endif

// The forward kernel's two output tiles (template parameter TILE): 0, the large tile
// (BY * RY rows by BX columns, 16 x 32 with the defaults), and 1, the small tile for small
// outputs (8 x 16), where the large one would compute mostly positions outside the image
// (5.1x the useful multiply-adds on a 10 x 10 output, 2.6x with the small tile).  The launch
// plan (cuda.py) picks the tile per shape.
template <int TILE> struct xpcnn_tile;
template <> struct xpcnn_tile<0> {
    static constexpr int BX = XPCNN_FWD_BX, BY = XPCNN_FWD_BY, RY = XPCNN_FWD_RY;
};
template <> struct xpcnn_tile<1> {
    static constexpr int BX = XPCNN_FWD_SMALL_BX, BY = XPCNN_FWD_SMALL_BY, RY = XPCNN_FWD_SMALL_RY;
};

// Dynamic shared memory, sized by the launch (cuda.py keeps it within 48 KiB).
extern __shared__ __align__(16) unsigned char xpcnn_smem[];

// The OCB weights of one tap, read from shared memory as 16-byte vectors (every thread of the
// block reads the same address: a broadcast), so that a tap costs RY + OCB / (16 / sizeof(T))
// shared loads for RY * OCB fused multiply-adds.
static_assert(XPCNN_FWD_OCB % 4 == 0, "XPCNN_FWD_OCB must be a multiple of 4");

__device__ __forceinline__ void xpcnn_load_weights(const float* p, float (&w)[XPCNN_FWD_OCB])
{
    const float4* v = reinterpret_cast<const float4*>(p);
#pragma unroll
    for (int q = 0; q < XPCNN_FWD_OCB / 4; ++q) {
        const float4 a = v[q];
        w[4 * q] = a.x;
        w[4 * q + 1] = a.y;
        w[4 * q + 2] = a.z;
        w[4 * q + 3] = a.w;
    }
}

__device__ __forceinline__ void xpcnn_load_weights(const double* p, double (&w)[XPCNN_FWD_OCB])
{
    const double2* v = reinterpret_cast<const double2*>(p);
#pragma unroll
    for (int q = 0; q < XPCNN_FWD_OCB / 2; ++q) {
        const double2 a = v[q];
        w[2 * q] = a.x;
        w[2 * q + 1] = a.y;
    }
}

// ---------------------------------------------------------------------------------------
// Forward: y[n, o, oy, ox] = sum_c sum_i sum_j xpad[n, c, oy*sh + i, ox*sw + j] k[o, c, i, j]
//
// Block: BX x BY threads (xpcnn_tile<TILE>).  A block computes an output tile of
// TILE_H = BY * RY rows by TILE_W = BX columns for OCB output channels of one sample; each
// thread holds RY x OCB outputs in registers (rows ty, ty + BY, ..., column tx).
// The input channels are walked in chunks of cb: the chunk's input tile (with its
// (TILE_H - 1) * sh + kh by (TILE_W - 1) * sw + kw halo, zero outside the image) and its
// OCB x cb x kh x kw weights are staged in shared memory, then every thread accumulates.
// grid.x = N * tiles_y * tiles_x, grid.y = min(ceil(O / OCB), 65535).
// Shared memory: cb * in_h * in_w elements of T rounded up to 16 bytes, then
// cb * kh * kw * OCB elements of T (16-byte aligned, read as vectors).
// ---------------------------------------------------------------------------------------
// __launch_bounds__(128, 3) for the large tile: at most 168 registers a thread, so that three
// blocks fit an SM (384 threads; the small tile's 64-thread blocks: 6).  Left to its own
// heuristic ptxas picked 80 registers for some instances and spilled (checked by
// xpcnn/tools/cuda_compile.py for every instance, with NVRTC and nvcc).
template <typename T, int KH, int KW, int TILE>
__global__ void __launch_bounds__(xpcnn_tile<TILE>::BX * xpcnn_tile<TILE>::BY,
                                  384 / (xpcnn_tile<TILE>::BX * xpcnn_tile<TILE>::BY))
xpcnn_conv2d_forward(const T* __restrict__ x, const T* __restrict__ k, T* __restrict__ y,
                     int N, int C, int H, int W, int O, int OH, int OW,
                     int kh_arg, int kw_arg, int sh, int sw, int ph, int pw,
                     int tiles_x, int tiles_y, int cb, int in_h, int in_w)
{
    constexpr int BX = xpcnn_tile<TILE>::BX;
    constexpr int BY = xpcnn_tile<TILE>::BY;
    constexpr int RY = xpcnn_tile<TILE>::RY;
    constexpr int OCB = XPCNN_FWD_OCB;
    constexpr int TILE_H = BY * RY;
    constexpr int TILE_W = BX;
    const int kh = KH > 0 ? KH : kh_arg;
    const int kw = KW > 0 ? KW : kw_arg;
    const int khkw = kh * kw;
    const int tile_size = in_h * in_w;

    constexpr int PER16 = 16 / (int)sizeof(T);
    T* xs = reinterpret_cast<T*>(xpcnn_smem);                     // [cb][in_h][in_w]
    T* ws = xs + (cb * tile_size + PER16 - 1) / PER16 * PER16;    // [cb][kh * kw][OCB], 16-byte aligned

    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * BX + tx;
    constexpr int NTHREADS = BX * BY;

    const int bx = blockIdx.x;
    const int tile_x = bx % tiles_x;
    const int rest = bx / tiles_x;
    const int tile_y = rest % tiles_y;
    const int n = rest / tiles_y;
    if (n >= N) return;  // uniform over the block
    const int oy0 = tile_y * TILE_H;
    const int ox0 = tile_x * TILE_W;
    const int iy0 = oy0 * sh - ph;
    const int ix0 = ox0 * sw - pw;
    const long long HW = (long long)H * W;
    const T* xn = x + (long long)n * C * HW;
    const int n_oblocks = (O + OCB - 1) / OCB;

    for (int ob = blockIdx.y; ob < n_oblocks; ob += gridDim.y) {
        const int o0 = ob * OCB;
        T acc[RY][OCB];
#pragma unroll
        for (int r = 0; r < RY; ++r) {
#pragma unroll
            for (int q = 0; q < OCB; ++q) acc[r][q] = T(0);
        }

        for (int c0 = 0; c0 < C; c0 += cb) {
            // Stage the input tile of channels c0 .. c0 + cb - 1 (zero padding, zero past C).
            for (int idx = tid; idx < cb * tile_size; idx += NTHREADS) {
                const int cl = idx / tile_size;
                const int r = idx - cl * tile_size;
                const int a = r / in_w;
                const int b = r - a * in_w;
                const int c = c0 + cl;
                const int iy = iy0 + a;
                const int ix = ix0 + b;
                T v = T(0);
                if (c < C && iy >= 0 && iy < H && ix >= 0 && ix < W)
                    v = xn[c * HW + (long long)iy * W + ix];
                xs[idx] = v;
            }
            // Stage the weights as [cl][tap][oc] (zero past O and C).
            for (int idx = tid; idx < cb * khkw * OCB; idx += NTHREADS) {
                const int cl = idx / (khkw * OCB);
                const int r = idx - cl * (khkw * OCB);
                const int tap = r / OCB;
                const int q = r - tap * OCB;
                const int c = c0 + cl;
                const int o = o0 + q;
                T v = T(0);
                if (c < C && o < O) v = k[((long long)o * C + c) * khkw + tap];
                ws[idx] = v;
            }
            __syncthreads();

            const int cmax = C - c0 < cb ? C - c0 : cb;
            for (int cl = 0; cl < cmax; ++cl) {
                const T* xc = xs + cl * tile_size;
                const T* wc = ws + cl * khkw * OCB;
                // Rows not unrolled: unrolling both loops makes ptxas spill at kh = 5 (float).
#pragma unroll 1
                for (int i = 0; i < kh; ++i) {
#pragma unroll
                    for (int j = 0; j < kw; ++j) {
                        T xv[RY];
#pragma unroll
                        for (int r = 0; r < RY; ++r)
                            xv[r] = xc[((ty + r * BY) * sh + i) * in_w + tx * sw + j];
                        T wv[OCB];
                        xpcnn_load_weights(wc + (i * kw + j) * OCB, wv);
#pragma unroll
                        for (int q = 0; q < OCB; ++q) {
#pragma unroll
                            for (int r = 0; r < RY; ++r) acc[r][q] += xv[r] * wv[q];
                        }
                    }
                }
            }
            __syncthreads();
        }

        const int ox = ox0 + tx;
#pragma unroll
        for (int r = 0; r < RY; ++r) {
            const int oy = oy0 + ty + r * BY;
            if (oy < OH && ox < OW) {
#pragma unroll
                for (int q = 0; q < OCB; ++q) {
                    const int o = o0 + q;
                    if (o < O) y[(((long long)n * O + o) * OH + oy) * OW + ox] = acc[r][q];
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kernel gradient, partial sums over a group of samples (eq. 18):
//   partial[g, o, c, tap] = sum_{n in group g} sum_{oy, ox} dy[n, o, oy, ox] xpad[n, c, oy*sh + i, ox*sw + j]
// with tap = i * kw + j.  One block per (o, c) pair (grid.x = O * C), per group of
// n_per_group samples (grid.y = groups <= 65535) and per chunk of TAPS taps (grid.z; one
// chunk for the specialised sizes, ceil(kh * kw / XPCNN_GRAD_MAXT) for the general kernel).
// Each thread accumulates its share of the (n, oy, ox) positions for every tap in registers;
// the block then reduces each tap, warp by warp with shuffles and across warps in a fixed
// order (blockDim.x must be XPCNN_GRAD_THREADS, whole warps).  No atomics: the result is
// deterministic.  Shared memory: TAPS * XPCNN_GRAD_THREADS / 32 elements of T.
// ---------------------------------------------------------------------------------------
template <typename T, int KH, int KW>
__global__ void __launch_bounds__(XPCNN_GRAD_THREADS)
xpcnn_conv2d_kernel_grad(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ partial,
                         int N, int C, int H, int W, int O, int OH, int OW,
                         int kh_arg, int kw_arg, int sh, int sw, int ph, int pw, int n_per_group)
{
    constexpr bool FIXED = KH > 0 && KW > 0;
    constexpr int TAPS = FIXED ? KH * KW : XPCNN_GRAD_MAXT;
    constexpr int NTHREADS = XPCNN_GRAD_THREADS;
    constexpr int WARPS = NTHREADS / 32;
    static_assert(NTHREADS % 32 == 0 && TAPS <= NTHREADS, "block of whole warps, a thread per tap");
    const int kh = FIXED ? KH : kh_arg;
    const int kw = FIXED ? KW : kw_arg;
    const int khkw = kh * kw;
    T* red = reinterpret_cast<T*>(xpcnn_smem);  // [TAPS][WARPS]

    const int tid = threadIdx.x;
    const int o = blockIdx.x / C;
    const int c = blockIdx.x - o * C;
    const int g = blockIdx.y;
    const int t0 = FIXED ? 0 : (int)blockIdx.z * TAPS;
    const int n0 = g * n_per_group;
    const int n1 = N - n0 < n_per_group ? N : n0 + n_per_group;
    const int P = OH * OW;
    const long long HW = (long long)H * W;

    T acc[TAPS];
#pragma unroll
    for (int t = 0; t < TAPS; ++t) acc[t] = T(0);

    for (int n = n0; n < n1; ++n) {
        const T* xc = x + ((long long)n * C + c) * HW;
        const T* dyo = dy + ((long long)n * O + o) * P;
        for (int p = tid; p < P; p += NTHREADS) {
            const int oy = p / OW;
            const int ox = p - oy * OW;
            const T d = dyo[p];
            const int iyb = oy * sh - ph;
            const int ixb = ox * sw - pw;
#pragma unroll
            for (int t = 0; t < TAPS; ++t) {
                const int tap = t0 + t;
                if (FIXED || tap < khkw) {
                    const int i = tap / kw;
                    const int j = tap - i * kw;
                    const int iy = iyb + i;
                    const int ix = ixb + j;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        acc[t] += d * xc[(long long)iy * W + ix];
                }
            }
        }
    }

    // Reduce each tap over the block: a shuffle tree within each warp, then one thread per
    // tap adds the warps' sums in warp order.  Fixed order, no atomics.
    const int lane = tid & 31;
    const int warp = tid >> 5;
#pragma unroll
    for (int t = 0; t < TAPS; ++t) {
        T v = acc[t];
#pragma unroll
        for (int s = 16; s > 0; s >>= 1) v += __shfl_down_sync(0xffffffffu, v, s);
        if (lane == 0) red[t * WARPS + warp] = v;
    }
    __syncthreads();
    if (tid < TAPS && t0 + tid < khkw) {
        T sum = T(0);
        for (int w = 0; w < WARPS; ++w) sum += red[tid * WARPS + w];
        partial[(((long long)g * O + o) * C + c) * khkw + t0 + tid] = sum;
    }
}

// ---------------------------------------------------------------------------------------
// out[i] = sum_{g = 0 .. groups-1} partial[g * count + i], in that order (deterministic).
// 1-D grid-stride loop; grid.x is capped by the caller.
// ---------------------------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(256)
xpcnn_sum_partials(const T* __restrict__ partial, T* __restrict__ out, int groups, long long count)
{
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) {
        T s = T(0);
        for (int g = 0; g < groups; ++g) s += partial[(long long)g * count + i];
        out[i] = s;
    }
}
