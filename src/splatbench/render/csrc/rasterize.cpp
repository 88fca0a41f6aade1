// Tile-based CPU rasterizer for 3D Gaussian Splatting (splatbench).
//
// Three rasterizer entry points (the module also binds geometry.cpp's fused projection and SH
// kernels), mirroring gsplat's split of the work:
//   isect_tiles     bin projected Gaussians into tiles, each tile's list sorted front to back
//   rasterize_fwd   composite every tile front to back (alpha blending, early stop)
//   rasterize_bwd   walk each pixel's list back to front and accumulate the gradients
//
// Conventions follow gsplat 1.5.x (classic mode): pixel centres at +0.5, the conic is the upper
// triangle (a, b, c) of the inverse 2D covariance with sigma = 0.5 (a dx^2 + c dy^2) + b dx dy,
// alpha = min(0.999, opacity * exp(-sigma)), alphas below 1/255 are skipped, and a pixel stops
// before the Gaussian that would take its transmittance to 1e-4 or below.
//
// Parallelism: ATen's parallel backend (OpenMP in the CPU wheels), so torch.set_num_threads()
// governs it and no second OpenMP runtime is loaded. Tiles are handed out through an atomic
// counter because their costs differ by orders of magnitude.

#include <torch/extension.h>

#include "geometry.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

namespace {

constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kMaxAlpha = 0.999f;
constexpr float kTransmittanceStop = 1e-4f;

void check_cpu_float(const torch::Tensor &t, const char *name, int64_t dim) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions");
}

void check_cpu_int(const torch::Tensor &t, const char *name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.scalar_type() == torch::kInt32, name, " must be int32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// Runs fn(job) for job in [0, n_jobs) on torch's worker threads with dynamic scheduling.
// fn also receives the worker slot, in [0, n_slots), for per-thread scratch buffers.
template <typename Fn> void parallel_jobs(int64_t n_jobs, int64_t n_slots, const Fn &fn) {
    std::atomic<int64_t> next(0);
    at::parallel_for(0, n_slots, 1, [&](int64_t begin, int64_t end) {
        for (int64_t slot = begin; slot < end; ++slot) {
            for (int64_t job = next.fetch_add(1); job < n_jobs; job = next.fetch_add(1)) {
                fn(job, slot);
            }
        }
    });
}

// A tile's Gaussians, copied into contiguous arrays so the per-pixel loop streams through them.
template <int D> struct TileCache {
    std::vector<float> xy, conic, opac, color;
    void load(int64_t n, const int32_t *ids, const float *means2d, const float *conics,
              const float *opacities, const float *colors) {
        xy.resize(2 * n);
        conic.resize(3 * n);
        opac.resize(n);
        color.resize(D * n);
        for (int64_t k = 0; k < n; ++k) {
            const int64_t g = ids[k];
            xy[2 * k] = means2d[2 * g];
            xy[2 * k + 1] = means2d[2 * g + 1];
            conic[3 * k] = conics[3 * g];
            conic[3 * k + 1] = conics[3 * g + 1];
            conic[3 * k + 2] = conics[3 * g + 2];
            opac[k] = opacities[g];
            for (int c = 0; c < D; ++c) color[D * k + c] = colors[D * g + c];
        }
    }
};

struct TileGeom {
    int64_t image, ty, tx, x0, y0, x1, y1;
};

TileGeom tile_geom(int64_t job, int64_t tile_w, int64_t tile_h, int64_t tile_size, int64_t width,
                   int64_t height) {
    TileGeom t;
    const int64_t n_tiles = tile_w * tile_h;
    t.image = job / n_tiles;
    const int64_t tile_id = job % n_tiles;
    t.ty = tile_id / tile_w;
    t.tx = tile_id % tile_w;
    t.x0 = t.tx * tile_size;
    t.y0 = t.ty * tile_size;
    t.x1 = std::min(t.x0 + tile_size, width);
    t.y1 = std::min(t.y0 + tile_size, height);
    return t;
}

// ---------------------------------------------------------------------------------------------
// Binning
// ---------------------------------------------------------------------------------------------

std::vector<torch::Tensor> isect_tiles(const torch::Tensor &means2d, // [I, N, 2]
                                       const torch::Tensor &radii,   // [I, N, 2] int32
                                       const torch::Tensor &depths,  // [I, N]
                                       int64_t tile_size, int64_t tile_w, int64_t tile_h) {
    check_cpu_float(means2d, "means2d", 3);
    check_cpu_float(depths, "depths", 2);
    check_cpu_int(radii, "radii");
    const int64_t I = means2d.size(0), N = means2d.size(1);
    const int64_t n_tiles = tile_w * tile_h;
    const float *xy = means2d.data_ptr<float>();
    const int32_t *rad = radii.data_ptr<int32_t>();
    const float *dep = depths.data_ptr<float>();

    auto tiles_per_gauss = torch::zeros({I, N}, torch::kInt32);
    int32_t *tpg = tiles_per_gauss.data_ptr<int32_t>();
    // Per Gaussian tile rectangle [x0, x1) x [y0, y1), the same bounds as gsplat's isect kernel.
    std::vector<int32_t> rect(static_cast<size_t>(I * N * 4), 0);
    at::parallel_for(0, I * N, 4096, [&](int64_t begin, int64_t end) {
        const float ts = static_cast<float>(tile_size);
        for (int64_t i = begin; i < end; ++i) {
            const float rx = static_cast<float>(rad[2 * i]);
            const float ry = static_cast<float>(rad[2 * i + 1]);
            if (rx <= 0.f || ry <= 0.f) continue;
            const float mx = xy[2 * i] / ts, my = xy[2 * i + 1] / ts;
            auto clampi = [](float v, int64_t hi) {
                return static_cast<int32_t>(std::min<float>(std::max(v, 0.f), hi));
            };
            const int32_t x0 = clampi(std::floor(mx - rx / ts), tile_w);
            const int32_t y0 = clampi(std::floor(my - ry / ts), tile_h);
            const int32_t x1 = clampi(std::ceil(mx + rx / ts), tile_w);
            const int32_t y1 = clampi(std::ceil(my + ry / ts), tile_h);
            rect[4 * i] = x0;
            rect[4 * i + 1] = y0;
            rect[4 * i + 2] = x1;
            rect[4 * i + 3] = y1;
            tpg[i] = (x1 - x0) * (y1 - y0);
        }
    });

    // Front-to-back order per image: sort visible Gaussians once by (depth, index). Depths of
    // visible Gaussians are > near_plane > 0, so their float bits order like the floats.
    std::vector<std::vector<uint64_t>> order(I);
    int64_t n_isects = 0;
    for (int64_t img = 0; img < I; ++img) {
        std::vector<uint64_t> &keys = order[img];
        for (int64_t g = 0; g < N; ++g) {
            const int64_t i = img * N + g;
            if (tpg[i] <= 0) continue;
            uint32_t bits;
            std::memcpy(&bits, &dep[i], sizeof(bits));
            keys.push_back((static_cast<uint64_t>(bits) << 32) | static_cast<uint64_t>(g));
            n_isects += tpg[i];
        }
    }
    at::parallel_for(0, I, 1, [&](int64_t begin, int64_t end) {
        for (int64_t img = begin; img < end; ++img) std::sort(order[img].begin(), order[img].end());
    });

    auto isect_offsets = torch::zeros({I, tile_h, tile_w}, torch::kInt32);
    auto isect_ids = torch::empty({n_isects}, torch::kInt64);
    auto flatten_ids = torch::empty({n_isects}, torch::kInt32);
    int32_t *offsets = isect_offsets.data_ptr<int32_t>();
    int64_t *iids = isect_ids.data_ptr<int64_t>();
    int32_t *fids = flatten_ids.data_ptr<int32_t>();
    TORCH_CHECK(n_isects < INT32_MAX, "too many tile intersections: ", n_isects);

    // Counting sort by tile: filling in depth order keeps every tile's list sorted by depth.
    std::vector<int64_t> cursor(static_cast<size_t>(I * n_tiles), 0);
    for (int64_t img = 0; img < I; ++img) {
        for (uint64_t key : order[img]) {
            const int64_t i = img * N + static_cast<int64_t>(key & 0xffffffffu);
            for (int32_t y = rect[4 * i + 1]; y < rect[4 * i + 3]; ++y)
                for (int32_t x = rect[4 * i]; x < rect[4 * i + 2]; ++x)
                    cursor[img * n_tiles + y * tile_w + x] += 1;
        }
    }
    int64_t run = 0;
    for (int64_t t = 0; t < I * n_tiles; ++t) {
        const int64_t count = cursor[t];
        offsets[t] = static_cast<int32_t>(run);
        cursor[t] = run;
        run += count;
    }
    int64_t tile_bits = 0;
    while ((int64_t(1) << tile_bits) <= n_tiles) ++tile_bits;
    for (int64_t img = 0; img < I; ++img) {
        for (uint64_t key : order[img]) {
            const int64_t g = static_cast<int64_t>(key & 0xffffffffu);
            const int64_t i = img * N + g;
            const uint64_t depth_bits = key >> 32;
            for (int32_t y = rect[4 * i + 1]; y < rect[4 * i + 3]; ++y) {
                for (int32_t x = rect[4 * i]; x < rect[4 * i + 2]; ++x) {
                    const int64_t tile_id = y * tile_w + x;
                    const int64_t pos = cursor[img * n_tiles + tile_id]++;
                    // gsplat's isect id layout: image | tile | depth bits.
                    iids[pos] = static_cast<int64_t>(
                        ((static_cast<uint64_t>(img) << tile_bits | tile_id) << 32) | depth_bits);
                    fids[pos] = static_cast<int32_t>(i);
                }
            }
        }
    }
    return {tiles_per_gauss, isect_ids, flatten_ids, isect_offsets};
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Per-tile kernels
// ---------------------------------------------------------------------------------------------
//
// A tile's pixels are processed together, one Gaussian at a time, with masked updates over
// 8-wide float vectors (GCC vector extensions: explicit, so the speed does not hinge on the
// auto-vectoriser). Function multi-versioning builds an AVX2/FMA clone chosen at run time, so no
// -march=native ends up in a shared build cache. Tile rows are padded to a multiple of 8 pixels.

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPLAT_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define SPLAT_CLONES
#endif

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
constexpr int kLanes = 8;
constexpr int kMaxTileVecs = 64 * 64 / kLanes;  // tile_size <= 64

static inline vf splat(float x) { return vf{} + x; }
static inline vi splat_i(int32_t x) { return vi{} + x; }

// exp(x) for x <= 0 to ~2 ulp: Cody-Waite reduction by ln 2 and the classic degree-6 minimax
// polynomial for exp on [-ln2/2, ln2/2]; branch-free so it runs on whole vectors.
static inline vf exp_neg(vf x) {
    x = x < splat(-87.0f) ? splat(-87.0f) : x;
    const vf t = x * 1.44269504088896341f - 0.5f;  // round(x / ln2) for x <= 0 ...
    const vi n = __builtin_convertvector(t, vi);    // ... as truncation (= ceil for t < 0)
    const vf fn = __builtin_convertvector(n, vf);
    vf r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const vi bits = (n + 127) << 23;
    return p * reinterpret_cast<const vf &>(bits);
}

// Rows of the tile that a Gaussian can reach with alpha >= 1/255 (plus a one-pixel margin, so
// the exact per-pixel test decides at the boundary). Returns false if it reaches none.
static inline bool row_span(float gy, float a, float b, float c, float opac, int64_t y0,
                            int64_t rows, int64_t &r0, int64_t &r1) {
    const float det = a * c - b * b;
    if (!(det > 0.f)) {  // degenerate conic: be conservative
        r0 = 0;
        r1 = rows;
        return true;
    }
    const float level = std::log(std::max(opac, kAlphaThreshold) / kAlphaThreshold);
    const float ext = std::sqrt(2.0f * level * a / det) + 1.0f;
    const float lo = gy - ext - static_cast<float>(y0) - 0.5f;
    const float hi = gy + ext - static_cast<float>(y0) - 0.5f;
    r0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(lo)));
    r1 = std::min<int64_t>(rows, static_cast<int64_t>(std::floor(hi)) + 1);
    return r0 < r1;
}

// Pixel layout of a tile: row r, column q sits at r * stride + q, stride = tile_size rounded up
// to a multiple of 8; padding columns (and columns beyond the image) are inert.
struct TileLayout {
    int64_t stride, vecs_per_row, rows, cols, x0, y0;
};

static inline void init_pixel_coords(const TileLayout &L, vf *px, vf *py) {
    for (int64_t j = 0; j < L.rows * L.vecs_per_row; ++j) {
        const int64_t r = j / L.vecs_per_row, q0 = (j % L.vecs_per_row) * kLanes;
        for (int l = 0; l < kLanes; ++l) {
            px[j][l] = static_cast<float>(L.x0 + q0 + l) + 0.5f;
            py[j][l] = static_cast<float>(L.y0 + r) + 0.5f;
        }
    }
}

struct alignas(32) FwdTileState {
    vf px[kMaxTileVecs], py[kMaxTileVecs], T[kMaxTileVecs], acc[4][kMaxTileVecs];
    vi run[kMaxTileVecs], last[kMaxTileVecs];
};

// Front-to-back compositing of one tile's n depth-sorted Gaussians.
template <int D>
SPLAT_CLONES void fwd_tile(FwdTileState &s, const TileLayout &L, int64_t n, const float *xy,
                           const float *conic, const float *opac, const float *color) {
    const int64_t nv = L.rows * L.vecs_per_row;
    init_pixel_coords(L, s.px, s.py);
    for (int64_t j = 0; j < nv; ++j) {
        s.T[j] = splat(1.0f);
        s.last[j] = splat_i(-1);
        for (int c = 0; c < D; ++c) s.acc[c][j] = vf{};
        const int64_t q0 = (j % L.vecs_per_row) * kLanes;
        for (int l = 0; l < kLanes; ++l) s.run[j][l] = q0 + l < L.cols ? -1 : 0;
    }
    const vf max_alpha = splat(kMaxAlpha), zero = vf{};
    for (int64_t k = 0; k < n; ++k) {
        const float gx = xy[2 * k], gy = xy[2 * k + 1];
        const float a = conic[3 * k], b = conic[3 * k + 1], c = conic[3 * k + 2];
        const float op = opac[k];
        int64_t r0, r1;
        if (!row_span(gy, a, b, c, op, L.y0, L.rows, r0, r1)) continue;
        float col[4] = {};
        for (int ch = 0; ch < D; ++ch) col[ch] = color[D * k + ch];
        const vi kk = splat_i(static_cast<int32_t>(k));
        for (int64_t j = r0 * L.vecs_per_row; j < r1 * L.vecs_per_row; ++j) {
            const vf dx = gx - s.px[j], dy = gy - s.py[j];
            const vf sigma = 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
            vf alpha = op * exp_neg(-sigma);
            alpha = alpha < max_alpha ? alpha : max_alpha;
            const vf T = s.T[j];
            const vi valid = s.run[j] & (sigma >= zero) & (alpha >= kAlphaThreshold);
            const vf next_T = T * (1.0f - alpha);
            const vi stop = valid & (next_T <= kTransmittanceStop);  // exclusive, as gsplat
            const vi take = valid & ~stop;
            const vf w = take ? alpha * T : zero;
            for (int ch = 0; ch < D; ++ch) s.acc[ch][j] += w * col[ch];
            s.T[j] = take ? next_T : T;
            s.last[j] = take ? kk : s.last[j];
            s.run[j] &= ~stop;
        }
        if ((k & 15) == 15) {  // every pixel of the tile saturated: the rest is hidden
            vi any = vi{};
            for (int64_t j = 0; j < nv; ++j) any |= s.run[j];
            bool alive = false;
            for (int l = 0; l < kLanes; ++l) alive |= any[l] != 0;
            if (!alive) break;
        }
    }
}

template <int D>
void fwd_impl(const float *means2d, const float *conics, const float *colors,
              const float *opacities, const float *backgrounds, int64_t I, int64_t width,
              int64_t height, int64_t tile_size, int64_t tile_w, int64_t tile_h,
              const int32_t *offsets, const int32_t *fids, int64_t n_isects, float *out_colors,
              float *out_alphas, float *out_T, int32_t *last_ids) {
    const int64_t n_tiles = tile_w * tile_h;
    const int64_t n_slots = std::max<int64_t>(1, at::get_num_threads());
    std::vector<TileCache<D>> caches(n_slots);
    std::vector<std::unique_ptr<FwdTileState>> states(n_slots);
    const int64_t stride = (tile_size + kLanes - 1) / kLanes * kLanes;
    parallel_jobs(I * n_tiles, n_slots, [&](int64_t job, int64_t slot) {
        const TileGeom tg = tile_geom(job, tile_w, tile_h, tile_size, width, height);
        const int64_t start = offsets[job];
        const int64_t end = job + 1 < I * n_tiles ? offsets[job + 1] : n_isects;
        const int64_t n = end - start;
        TileCache<D> &tc = caches[slot];
        tc.load(n, fids + start, means2d, conics, opacities, colors);
        if (!states[slot]) states[slot] = std::make_unique<FwdTileState>();
        FwdTileState &s = *states[slot];
        const TileLayout L{stride, stride / kLanes, tg.y1 - tg.y0, tg.x1 - tg.x0, tg.x0, tg.y0};
        fwd_tile<D>(s, L, n, tc.xy.data(), tc.conic.data(), tc.opac.data(), tc.color.data());
        const float *bg = backgrounds ? backgrounds + tg.image * D : nullptr;
        for (int64_t r = 0; r < L.rows; ++r) {
            for (int64_t q = 0; q < L.cols; ++q) {
                const int64_t j = r * L.vecs_per_row + q / kLanes, l = q % kLanes;
                const int64_t pix = (tg.image * height + tg.y0 + r) * width + tg.x0 + q;
                const float T = s.T[j][l];
                for (int c = 0; c < D; ++c) {
                    const float v = s.acc[c][j][l];
                    out_colors[pix * D + c] = bg ? v + T * bg[c] : v;
                }
                out_alphas[pix] = 1.0f - T;
                out_T[pix] = T;
                const int32_t last = s.last[j][l];
                last_ids[pix] = last < 0 ? -1 : static_cast<int32_t>(start + last);
            }
        }
    });
}

// Per-thread gradient accumulators over all I * N Gaussians; summed at the end. This avoids
// atomics (tiles of one thread never race) at the cost of n_threads copies.
struct GradBuffers {
    std::vector<float> xy, xy_abs, conic, opac, color;
};

struct alignas(32) BwdTileState {
    vf px[kMaxTileVecs], py[kMaxTileVecs], T[kMaxTileVecs], T_final[kMaxTileVecs];
    vf v_rc[4][kMaxTileVecs], buf[4][kMaxTileVecs], v_a[kMaxTileVecs];
    vi last[kMaxTileVecs];
};

// Layout of a tile-local gradient row: xy(2) xy_abs(2) conic(3) opacity(1) colour(D).
constexpr int kGradFixed = 8;

static inline float hsum(vf v) {
    float s = 0.f;
    for (int l = 0; l < kLanes; ++l) s += v[l];
    return s;
}

// Back-to-front gradient walk of one tile (gsplat's scheme). s.T starts at the final
// transmittance and is divided back through each Gaussian; s.buf holds the colour accumulated
// behind the current Gaussian. Gradients per Gaussian are reduced over the tile's pixels.
template <int D>
SPLAT_CLONES void bwd_tile(BwdTileState &s, const TileLayout &L, int64_t kmax, const float *xy,
                           const float *conic, const float *opac, const float *color,
                           const float *bg, float *grads) {
    constexpr int S = kGradFixed + D;
    const vf max_alpha = splat(kMaxAlpha), zero = vf{};
    float bgc[4] = {};
    if (bg)
        for (int ch = 0; ch < D; ++ch) bgc[ch] = bg[ch];
    for (int64_t k = kmax; k >= 0; --k) {
        const float gx = xy[2 * k], gy = xy[2 * k + 1];
        const float a = conic[3 * k], b = conic[3 * k + 1], c = conic[3 * k + 2];
        const float op = opac[k];
        int64_t r0, r1;
        if (!row_span(gy, a, b, c, op, L.y0, L.rows, r0, r1)) continue;
        float col[4] = {};
        for (int ch = 0; ch < D; ++ch) col[ch] = color[D * k + ch];
        const vi kk = splat_i(static_cast<int32_t>(k));
        vf g_x{}, g_y{}, g_ax{}, g_ay{}, g_a{}, g_b{}, g_c{}, g_o{}, g_col[4] = {};
        for (int64_t j = r0 * L.vecs_per_row; j < r1 * L.vecs_per_row; ++j) {
            const vf dx = gx - s.px[j], dy = gy - s.py[j];
            const vf sigma = 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
            const vf vis = exp_neg(-sigma);
            const vf raw = op * vis;
            const vf alpha = raw < max_alpha ? raw : max_alpha;
            const vi valid = (kk <= s.last[j]) & (sigma >= zero) & (alpha >= kAlphaThreshold);
            const vf ra = 1.0f / (1.0f - alpha);
            const vf T = valid ? s.T[j] * ra : s.T[j];  // transmittance in front of Gaussian k
            const vf w = valid ? alpha * T : zero;
            vf v_alpha = zero, bg_dot = zero;
            for (int ch = 0; ch < D; ++ch) {
                v_alpha += (col[ch] * T - s.buf[ch][j] * ra) * s.v_rc[ch][j];
                bg_dot += bgc[ch] * s.v_rc[ch][j];
            }
            v_alpha += s.T_final[j] * ra * (s.v_a[j] - bg_dot);
            // Where alpha is clamped at 0.999 it does not depend on the Gaussian's parameters.
            const vi live = valid & (raw <= max_alpha);
            const vf v_sigma = live ? -raw * v_alpha : zero;
            const vf gxp = v_sigma * (a * dx + b * dy);
            const vf gyp = v_sigma * (b * dx + c * dy);
            g_x += gxp;
            g_y += gyp;
            g_ax += gxp < zero ? -gxp : gxp;
            g_ay += gyp < zero ? -gyp : gyp;
            g_a += 0.5f * v_sigma * dx * dx;
            g_b += v_sigma * dx * dy;
            g_c += 0.5f * v_sigma * dy * dy;
            g_o += live ? vis * v_alpha : zero;
            for (int ch = 0; ch < D; ++ch) {
                g_col[ch] += w * s.v_rc[ch][j];
                s.buf[ch][j] += w * col[ch];
            }
            s.T[j] = T;
        }
        float *g = grads + S * k;
        g[0] = hsum(g_x);
        g[1] = hsum(g_y);
        g[2] = hsum(g_ax);
        g[3] = hsum(g_ay);
        g[4] = hsum(g_a);
        g[5] = hsum(g_b);
        g[6] = hsum(g_c);
        g[7] = hsum(g_o);
        for (int ch = 0; ch < D; ++ch) g[kGradFixed + ch] = hsum(g_col[ch]);
    }
}

template <int D>
void bwd_impl(const float *means2d, const float *conics, const float *colors,
              const float *opacities, const float *backgrounds, int64_t I, int64_t N,
              int64_t width, int64_t height, int64_t tile_size, int64_t tile_w, int64_t tile_h,
              const int32_t *offsets, const int32_t *fids, int64_t n_isects, const float *final_T,
              const int32_t *last_ids, const float *v_colors_out, const float *v_alphas_out,
              bool absgrad, float *v_means2d, float *v_means2d_abs, float *v_conics,
              float *v_colors, float *v_opacities) {
    const int64_t n_tiles = tile_w * tile_h;
    const int64_t G = I * N;
    const int64_t n_slots = std::max<int64_t>(1, at::get_num_threads());
    std::vector<TileCache<D>> caches(n_slots);
    std::vector<GradBuffers> bufs(n_slots);
    std::vector<std::vector<float>> local(n_slots);  // tile-local gradient rows
    std::vector<std::unique_ptr<BwdTileState>> states(n_slots);
    constexpr int S = kGradFixed + D;
    const int64_t stride = (tile_size + kLanes - 1) / kLanes * kLanes;

    parallel_jobs(I * n_tiles, n_slots, [&](int64_t job, int64_t slot) {
        const int64_t start = offsets[job];
        const int64_t end = job + 1 < I * n_tiles ? offsets[job + 1] : n_isects;
        if (end == start) return;
        const TileGeom tg = tile_geom(job, tile_w, tile_h, tile_size, width, height);
        const TileLayout L{stride, stride / kLanes, tg.y1 - tg.y0, tg.x1 - tg.x0, tg.x0, tg.y0};
        if (!states[slot]) states[slot] = std::make_unique<BwdTileState>();
        BwdTileState &s = *states[slot];
        init_pixel_coords(L, s.px, s.py);
        int32_t kmax = -1;
        for (int64_t j = 0; j < L.rows * L.vecs_per_row; ++j) {
            const int64_t r = j / L.vecs_per_row, q0 = (j % L.vecs_per_row) * kLanes;
            for (int ch = 0; ch < D; ++ch) s.buf[ch][j] = vf{};
            for (int l = 0; l < kLanes; ++l) {
                const int64_t q = q0 + l;
                if (q >= L.cols) {  // padding or outside the image: inert
                    s.last[j][l] = -1;
                    s.T[j][l] = s.T_final[j][l] = 1.f;
                    s.v_a[j][l] = 0.f;
                    for (int ch = 0; ch < D; ++ch) s.v_rc[ch][j][l] = 0.f;
                    continue;
                }
                const int64_t pix = (tg.image * height + tg.y0 + r) * width + tg.x0 + q;
                const int32_t last = last_ids[pix] < 0 ? -1 : last_ids[pix] - int32_t(start);
                s.last[j][l] = last;
                kmax = std::max(kmax, last);
                s.T[j][l] = s.T_final[j][l] = final_T[pix];
                s.v_a[j][l] = v_alphas_out[pix];
                for (int ch = 0; ch < D; ++ch) s.v_rc[ch][j][l] = v_colors_out[pix * D + ch];
            }
        }
        if (kmax < 0) return;
        TileCache<D> &tc = caches[slot];
        tc.load(kmax + 1, fids + start, means2d, conics, opacities, colors);
        std::vector<float> &acc = local[slot];
        acc.assign(static_cast<size_t>((kmax + 1) * S), 0.f);
        const float *bg = backgrounds ? backgrounds + tg.image * D : nullptr;
        bwd_tile<D>(s, L, kmax, tc.xy.data(), tc.conic.data(), tc.opac.data(), tc.color.data(),
                    bg, acc.data());

        GradBuffers &gb = bufs[slot];
        if (gb.xy.empty()) {
            gb.xy.assign(2 * G, 0.f);
            if (absgrad) gb.xy_abs.assign(2 * G, 0.f);
            gb.conic.assign(3 * G, 0.f);
            gb.opac.assign(G, 0.f);
            gb.color.assign(D * G, 0.f);
        }
        for (int64_t k = 0; k <= kmax; ++k) {
            const int64_t g = fids[start + k];
            const float *a = &acc[S * k];
            gb.xy[2 * g] += a[0];
            gb.xy[2 * g + 1] += a[1];
            if (absgrad) {
                gb.xy_abs[2 * g] += a[2];
                gb.xy_abs[2 * g + 1] += a[3];
            }
            gb.conic[3 * g] += a[4];
            gb.conic[3 * g + 1] += a[5];
            gb.conic[3 * g + 2] += a[6];
            gb.opac[g] += a[7];
            for (int c = 0; c < D; ++c) gb.color[D * g + c] += a[kGradFixed + c];
        }
    });

    // Sum the per-thread buffers. The outputs come uninitialised: each range is zeroed here,
    // in the same parallel pass, rather than by separate fill kernels.
    at::parallel_for(0, G, 8192, [&](int64_t begin, int64_t end) {
        const auto zero = [&](float *p, int64_t width) {
            std::fill(p + width * begin, p + width * end, 0.f);
        };
        zero(v_means2d, 2);
        if (absgrad) zero(v_means2d_abs, 2);
        zero(v_conics, 3);
        zero(v_opacities, 1);
        zero(v_colors, D);
        for (const GradBuffers &gb : bufs) {
            if (gb.xy.empty()) continue;
            for (int64_t g = begin; g < end; ++g) {
                v_means2d[2 * g] += gb.xy[2 * g];
                v_means2d[2 * g + 1] += gb.xy[2 * g + 1];
                if (absgrad) {
                    v_means2d_abs[2 * g] += gb.xy_abs[2 * g];
                    v_means2d_abs[2 * g + 1] += gb.xy_abs[2 * g + 1];
                }
                for (int j = 0; j < 3; ++j) v_conics[3 * g + j] += gb.conic[3 * g + j];
                v_opacities[g] += gb.opac[g];
                for (int c = 0; c < D; ++c) v_colors[D * g + c] += gb.color[D * g + c];
            }
        }
    });
}

std::vector<torch::Tensor> rasterize_fwd(const torch::Tensor &means2d,     // [I, N, 2]
                                         const torch::Tensor &conics,      // [I, N, 3]
                                         const torch::Tensor &colors,      // [I, N, D]
                                         const torch::Tensor &opacities,   // [I, N]
                                         const torch::Tensor &backgrounds, // [I, D] or [0]
                                         int64_t width, int64_t height, int64_t tile_size,
                                         const torch::Tensor &isect_offsets, // [I, th, tw]
                                         const torch::Tensor &flatten_ids) { // [M]
    check_cpu_float(means2d, "means2d", 3);
    check_cpu_float(conics, "conics", 3);
    check_cpu_float(colors, "colors", 3);
    check_cpu_float(opacities, "opacities", 2);
    check_cpu_int(isect_offsets, "isect_offsets");
    check_cpu_int(flatten_ids, "flatten_ids");
    const int64_t I = means2d.size(0), D = colors.size(2);
    const int64_t tile_h = isect_offsets.size(1), tile_w = isect_offsets.size(2);
    const bool has_bg = backgrounds.numel() > 0;
    if (has_bg) check_cpu_float(backgrounds, "backgrounds", 2);
    TORCH_CHECK(tile_size >= 1 && tile_size <= 64,
                "tile_size must be in 1..64, got ", tile_size);
    auto out_colors = torch::empty({I, height, width, D}, torch::kFloat32);
    auto out_alphas = torch::empty({I, height, width, 1}, torch::kFloat32);
    auto out_T = torch::empty({I, height, width}, torch::kFloat32);
    auto last_ids = torch::empty({I, height, width}, torch::kInt32);
#define SPLAT_FWD(DIM)                                                                            \
    fwd_impl<DIM>(means2d.data_ptr<float>(), conics.data_ptr<float>(), colors.data_ptr<float>(), \
                  opacities.data_ptr<float>(), has_bg ? backgrounds.data_ptr<float>() : nullptr,  \
                  I, width, height, tile_size, tile_w, tile_h, isect_offsets.data_ptr<int32_t>(), \
                  flatten_ids.data_ptr<int32_t>(), flatten_ids.numel(),                           \
                  out_colors.data_ptr<float>(), out_alphas.data_ptr<float>(),                    \
                  out_T.data_ptr<float>(), last_ids.data_ptr<int32_t>())
    switch (D) {
    case 1: SPLAT_FWD(1); break;
    case 3: SPLAT_FWD(3); break;
    case 4: SPLAT_FWD(4); break;
    default: TORCH_CHECK(false, "unsupported number of colour channels: ", D, " (1, 3 or 4)");
    }
#undef SPLAT_FWD
    return {out_colors, out_alphas, out_T, last_ids};
}

std::vector<torch::Tensor> rasterize_bwd(const torch::Tensor &means2d, const torch::Tensor &conics,
                                         const torch::Tensor &colors,
                                         const torch::Tensor &opacities,
                                         const torch::Tensor &backgrounds, int64_t width,
                                         int64_t height, int64_t tile_size,
                                         const torch::Tensor &isect_offsets,
                                         const torch::Tensor &flatten_ids,
                                         const torch::Tensor &final_T,   // [I, H, W]
                                         const torch::Tensor &last_ids,  // [I, H, W]
                                         const torch::Tensor &v_render_colors,  // [I, H, W, D]
                                         const torch::Tensor &v_render_alphas,  // [I, H, W, 1]
                                         bool absgrad) {
    check_cpu_float(means2d, "means2d", 3);
    check_cpu_float(conics, "conics", 3);
    check_cpu_float(colors, "colors", 3);
    check_cpu_float(opacities, "opacities", 2);
    check_cpu_float(final_T, "final_T", 3);
    check_cpu_int(last_ids, "last_ids");
    check_cpu_float(v_render_colors, "v_render_colors", 4);
    check_cpu_float(v_render_alphas, "v_render_alphas", 4);
    const int64_t I = means2d.size(0), N = means2d.size(1), D = colors.size(2);
    const int64_t tile_h = isect_offsets.size(1), tile_w = isect_offsets.size(2);
    const bool has_bg = backgrounds.numel() > 0;
    TORCH_CHECK(tile_size >= 1 && tile_size <= 64,
                "tile_size must be in 1..64, got ", tile_size);
    // Uninitialised: bwd_impl zeroes them in its final reduction pass.
    auto v_means2d = torch::empty({I, N, 2}, torch::kFloat32);
    auto v_means2d_abs = torch::empty({absgrad ? I : 0, N, 2}, torch::kFloat32);
    auto v_conics = torch::empty({I, N, 3}, torch::kFloat32);
    auto v_colors = torch::empty({I, N, D}, torch::kFloat32);
    auto v_opacities = torch::empty({I, N}, torch::kFloat32);
#define SPLAT_BWD(DIM)                                                                            \
    bwd_impl<DIM>(means2d.data_ptr<float>(), conics.data_ptr<float>(), colors.data_ptr<float>(), \
                  opacities.data_ptr<float>(), has_bg ? backgrounds.data_ptr<float>() : nullptr,  \
                  I, N, width, height, tile_size, tile_w, tile_h,                                 \
                  isect_offsets.data_ptr<int32_t>(), flatten_ids.data_ptr<int32_t>(),             \
                  flatten_ids.numel(), final_T.data_ptr<float>(), last_ids.data_ptr<int32_t>(),   \
                  v_render_colors.data_ptr<float>(), v_render_alphas.data_ptr<float>(), absgrad,  \
                  v_means2d.data_ptr<float>(), absgrad ? v_means2d_abs.data_ptr<float>() : nullptr, \
                  v_conics.data_ptr<float>(), v_colors.data_ptr<float>(),                         \
                  v_opacities.data_ptr<float>())
    switch (D) {
    case 1: SPLAT_BWD(1); break;
    case 3: SPLAT_BWD(3); break;
    case 4: SPLAT_BWD(4); break;
    default: TORCH_CHECK(false, "unsupported number of colour channels: ", D, " (1, 3 or 4)");
    }
#undef SPLAT_BWD
    return {v_means2d, v_conics, v_colors, v_opacities, v_means2d_abs};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "splatbench tile-based CPU rasterizer for 3D Gaussian Splatting";
    m.def("isect_tiles", &isect_tiles, "bin Gaussians into depth-sorted tile lists");
    m.def("rasterize_fwd", &rasterize_fwd, "front-to-back tile compositing");
    m.def("rasterize_bwd", &rasterize_bwd, "back-to-front gradient of the compositing");
    // Fused per-Gaussian kernels, compiled from geometry.cpp (see geometry.h).
    m.def("project_fwd", &splatbench::project_fwd, "fused EWA projection, forward");
    m.def("project_bwd", &splatbench::project_bwd, "fused EWA projection, backward");
    m.def("sh_fwd", &splatbench::sh_fwd, "fused SH colours (degree 0..3), forward");
    m.def("sh_bwd", &splatbench::sh_bwd, "fused SH colours (degree 0..3), backward");
}
