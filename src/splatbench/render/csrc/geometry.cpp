// Fused projection and spherical-harmonics kernels (forward and backward) for the CPU backend.
//
// These replace ~100 small autograd ops per step with one pass over the Gaussians each way, in
// the spirit of gsplat's fused projection / SH kernels. The maths is exactly that of the PyTorch
// implementation in projection.py and sh.py (which remain the reference), including its
// treatment of culled entries: culled Gaussians get a safe depth (1) and a safe determinant (1)
// and gradients flow through those safe values, precisely as autograd would send them. The
// backward recomputes the cheap forward quantities instead of saving them.
//
// Parallelism is over Gaussians (at::parallel_for); cameras are looped inside, so per-Gaussian
// gradients summed over cameras need no atomics.

#include "geometry.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace splatbench {
namespace {

constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kMaxExtendSigmas = 3.33f;
constexpr float kNormEps = 1e-12f;  // F.normalize's eps
constexpr int64_t kGrain = 1024;

void check_float(const at::Tensor &t, const char *name, int64_t dim) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions");
}

// ------------------------------------------------------------------------------------------
// Small dense helpers (row-major 3x3; symmetric matrices as upper triangle xx xy xz yy yz zz)
// ------------------------------------------------------------------------------------------

struct Mat3 {
    float m[3][3];
};

Mat3 sym_full(const float *s6) {
    return {{{s6[0], s6[1], s6[2]}, {s6[1], s6[3], s6[4]}, {s6[2], s6[4], s6[5]}}};
}

// Gradient w.r.t. independent upper-triangle entries as a symmetric matrix H such that
// dL = tr(H dS) for symmetric dS: diagonal as is, off-diagonal halved.
Mat3 sym_from_grad6(const float *g6) {
    const float h1 = 0.5f * g6[1], h2 = 0.5f * g6[2], h4 = 0.5f * g6[4];
    return {{{g6[0], h1, h2}, {h1, g6[3], h4}, {h2, h4, g6[5]}}};
}

// Upper-triangle entries of A S A^T (S symmetric, given in full).
void congruence6(const Mat3 &A, const Mat3 &S, float *out6) {
    float T[3][3];  // A S
    for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 3; ++k)
            T[i][k] = A.m[i][0] * S.m[0][k] + A.m[i][1] * S.m[1][k] + A.m[i][2] * S.m[2][k];
    int idx = 0;
    for (int i = 0; i < 3; ++i)
        for (int j = i; j < 3; ++j)
            out6[idx++] = T[i][0] * A.m[j][0] + T[i][1] * A.m[j][1] + T[i][2] * A.m[j][2];
}

// Unit quaternion (wxyz) as F.normalize makes it; returns the norm before clamping.
float normalise_quat(const float *q, float *qn) {
    const float n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    const float d = std::max(n, kNormEps);
    for (int i = 0; i < 4; ++i) qn[i] = q[i] / d;
    return n;
}

Mat3 quat_rotmat(const float *qn) {
    const float w = qn[0], x = qn[1], y = qn[2], z = qn[3];
    return {{{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
             {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
             {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}}};
}

// Backward of F.normalize then quat_rotmat: v_R (d loss / d R) -> d loss / d q (raw quat).
void quat_rotmat_vjp(const float *qn, float norm, const Mat3 &vR, float *v_q) {
    const float w = qn[0], x = qn[1], y = qn[2], z = qn[3];
    const auto &v = vR.m;
    float g[4];
    g[0] = 2 * (-z * v[0][1] + y * v[0][2] + z * v[1][0] - x * v[1][2] - y * v[2][0] +
                x * v[2][1]);
    g[1] = 2 * (y * v[0][1] + z * v[0][2] + y * v[1][0] - 2 * x * v[1][1] - w * v[1][2] +
                z * v[2][0] + w * v[2][1] - 2 * x * v[2][2]);
    g[2] = 2 * (-2 * y * v[0][0] + x * v[0][1] + w * v[0][2] + x * v[1][0] + z * v[1][2] -
                w * v[2][0] + z * v[2][1] - 2 * y * v[2][2]);
    g[3] = 2 * (-2 * z * v[0][0] - w * v[0][1] + x * v[0][2] + w * v[1][0] - 2 * z * v[1][1] +
                y * v[1][2] + x * v[2][0] + y * v[2][1]);
    if (norm > kNormEps) {  // q / |q|: remove the radial component
        const float dot = g[0] * qn[0] + g[1] * qn[1] + g[2] * qn[2] + g[3] * qn[3];
        for (int i = 0; i < 4; ++i) v_q[i] = (g[i] - qn[i] * dot) / norm;
    } else {  // q / eps: the clamped norm is constant
        for (int i = 0; i < 4; ++i) v_q[i] = g[i] / kNormEps;
    }
}

// World-space covariance R diag(s)^2 R^T from the normalised quaternion and scales.
struct WorldCovar {
    Mat3 Rq, M;  // M = Rq diag(s)
    Mat3 S;      // full symmetric covariance
};

WorldCovar world_covar(const float *qn, const float *s) {
    WorldCovar wc;
    wc.Rq = quat_rotmat(qn);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) wc.M.m[i][j] = wc.Rq.m[i][j] * s[j];
    float s6[6];
    int idx = 0;
    for (int i = 0; i < 3; ++i)
        for (int j = i; j < 3; ++j)
            s6[idx++] = wc.M.m[i][0] * wc.M.m[j][0] + wc.M.m[i][1] * wc.M.m[j][1] +
                        wc.M.m[i][2] * wc.M.m[j][2];
    wc.S = sym_full(s6);
    return wc;
}

// ------------------------------------------------------------------------------------------
// Camera model: pinhole with gsplat's 1.3x FOV clamp of the EWA Jacobian
// ------------------------------------------------------------------------------------------

struct Camera {
    Mat3 R;
    float t[3];
    float fx, fy, cx, cy;
    float lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;
};

Camera load_camera(const float *view, const float *K, int64_t width, int64_t height) {
    Camera cam;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) cam.R.m[i][j] = view[4 * i + j];
        cam.t[i] = view[4 * i + 3];
    }
    cam.fx = K[0];
    cam.fy = K[4];
    cam.cx = K[2];
    cam.cy = K[5];
    const float w = static_cast<float>(width), h = static_cast<float>(height);
    const float tan_fovx = static_cast<float>(0.5 * width) / cam.fx;
    const float tan_fovy = static_cast<float>(0.5 * height) / cam.fy;
    cam.lim_x_pos = (w - cam.cx) / cam.fx + 0.3f * tan_fovx;
    cam.lim_x_neg = cam.cx / cam.fx + 0.3f * tan_fovx;
    cam.lim_y_pos = (h - cam.cy) / cam.fy + 0.3f * tan_fovy;
    cam.lim_y_neg = cam.cy / cam.fy + 0.3f * tan_fovy;
    return cam;
}

std::vector<Camera> load_cameras(const at::Tensor &viewmats, const at::Tensor &Ks, int64_t width,
                                 int64_t height) {
    const int64_t C = viewmats.size(0);
    std::vector<Camera> cams;
    cams.reserve(C);
    for (int64_t c = 0; c < C; ++c)
        cams.push_back(load_camera(viewmats.data_ptr<float>() + 16 * c,
                                   Ks.data_ptr<float>() + 9 * c, width, height));
    return cams;
}

// clamp(r, -neg, pos) as torch.maximum(torch.minimum(r, pos), -neg), with the derivative
// autograd gives it (1 inside, 1/2 at a tie, 0 outside).
float clamp_with_grad(float r, float neg, float pos, float &dr) {
    const float m = std::min(r, pos);
    const float d_min = r < pos ? 1.f : (r == pos ? 0.5f : 0.f);
    const float d_max = m > -neg ? 1.f : (m == -neg ? 0.5f : 0.f);
    dr = d_min * d_max;
    return std::max(m, -neg);
}

// Everything the projection computes for one (camera, Gaussian) pair.
struct Projected {
    float p[3];     // camera-space mean (true z in p[2])
    float sc6[6];   // camera-space covariance, upper triangle
    bool in_depth;  // near <= z <= far
    float zs;       // z, or 1 when out of depth (keeps culled entries finite)
    float rx, ry, dx, dy;  // clamped x/z, y/z and their derivatives
    float tx, ty;
    float j00, j02, j11, j12;
    float a, b, c;  // 2D covariance with the low-pass
    bool valid;     // in depth and det > 0
    float sdet;     // det, or 1 when not valid
    float mean2d[2], conic[3];
};

Projected project_one(const Camera &cam, const float *mean, const Mat3 &S, float eps2d,
                      float near_plane, float far_plane) {
    Projected r;
    for (int i = 0; i < 3; ++i)
        r.p[i] = cam.R.m[i][0] * mean[0] + cam.R.m[i][1] * mean[1] + cam.R.m[i][2] * mean[2] +
                 cam.t[i];
    congruence6(cam.R, S, r.sc6);
    const float x = r.p[0], y = r.p[1], z = r.p[2];
    r.in_depth = z >= near_plane && z <= far_plane;
    r.zs = r.in_depth ? z : 1.f;
    const float zs = r.zs;
    r.rx = clamp_with_grad(x / zs, cam.lim_x_neg, cam.lim_x_pos, r.dx);
    r.ry = clamp_with_grad(y / zs, cam.lim_y_neg, cam.lim_y_pos, r.dy);
    r.tx = zs * r.rx;
    r.ty = zs * r.ry;
    r.j00 = cam.fx / zs;
    r.j11 = cam.fy / zs;
    r.j02 = -cam.fx * r.tx / (zs * zs);
    r.j12 = -cam.fy * r.ty / (zs * zs);
    const float *s = r.sc6;  // s00 s01 s02 s11 s12 s22
    const float c00 = r.j00 * r.j00 * s[0] + 2 * r.j00 * r.j02 * s[2] + r.j02 * r.j02 * s[5];
    const float c01 = r.j00 * r.j11 * s[1] + r.j00 * r.j12 * s[2] + r.j02 * r.j11 * s[4] +
                      r.j02 * r.j12 * s[5];
    const float c11 = r.j11 * r.j11 * s[3] + 2 * r.j11 * r.j12 * s[4] + r.j12 * r.j12 * s[5];
    r.mean2d[0] = cam.fx * x / zs + cam.cx;
    r.mean2d[1] = cam.fy * y / zs + cam.cy;
    r.a = c00 + eps2d;
    r.b = c01;
    r.c = c11 + eps2d;
    const float det = r.a * r.c - r.b * r.b;
    r.valid = r.in_depth && det > 0.f;
    r.sdet = r.valid ? det : 1.f;
    r.conic[0] = r.c / r.sdet;
    r.conic[1] = -r.b / r.sdet;
    r.conic[2] = r.a / r.sdet;
    return r;
}

// gsplat's CUDA radius rule: per axis, opacity-aware extent, 0 where culled.
void radii_one(const Projected &r, float opacity, int64_t width, int64_t height, int32_t *out) {
    const float extend = std::min(
        std::sqrt(2.0f * std::log(std::max(opacity, kAlphaThreshold) / kAlphaThreshold)),
        kMaxExtendSigmas);
    const float rx = std::ceil(extend * std::sqrt(std::max(r.a, 0.f)));
    const float ry = std::ceil(extend * std::sqrt(std::max(r.c, 0.f)));
    const float mx = r.mean2d[0], my = r.mean2d[1];
    const bool keep = r.valid && opacity >= kAlphaThreshold && (rx > 0.f || ry > 0.f) &&
                      mx + rx > 0.f && mx - rx < static_cast<float>(width) && my + ry > 0.f &&
                      my - ry < static_cast<float>(height);
    out[0] = keep ? static_cast<int32_t>(rx) : 0;
    out[1] = keep ? static_cast<int32_t>(ry) : 0;
}

// Backward of project_one for upstream (v_mean2d, v_depth, v_conic): gradients w.r.t. the
// camera-space mean (v_p) and the camera-space covariance's upper triangle (v_sc6).
void project_one_vjp(const Camera &cam, const Projected &r, const float *v_mean2d, float v_depth,
                     const float *v_conic, float *v_p, float *v_sc6) {
    // conics = (c, -b, a) / sdet, sdet = a c - b^2 where valid.
    const float sd = r.sdet, inv = 1.f / sd;
    float v_a = v_conic[2] * inv, v_b = -v_conic[1] * inv, v_c = v_conic[0] * inv;
    if (r.valid) {
        const float v_sd = -(v_conic[0] * r.c - v_conic[1] * r.b + v_conic[2] * r.a) * inv * inv;
        v_a += v_sd * r.c;
        v_c += v_sd * r.a;
        v_b += -2.f * r.b * v_sd;
    }
    // 2D covariance J Sigma_c J^T with J = [[j00, 0, j02], [0, j11, j12]] (explicit formulas).
    const float *s = r.sc6;
    const float j00 = r.j00, j02 = r.j02, j11 = r.j11, j12 = r.j12;
    v_sc6[0] = v_a * j00 * j00;
    v_sc6[1] = v_b * j00 * j11;
    v_sc6[2] = 2 * v_a * j00 * j02 + v_b * j00 * j12;
    v_sc6[3] = v_c * j11 * j11;
    v_sc6[4] = v_b * j02 * j11 + 2 * v_c * j11 * j12;
    v_sc6[5] = v_a * j02 * j02 + v_b * j02 * j12 + v_c * j12 * j12;
    const float v_j00 = v_a * (2 * j00 * s[0] + 2 * j02 * s[2]) + v_b * (j11 * s[1] + j12 * s[2]);
    const float v_j02 = v_a * (2 * j00 * s[2] + 2 * j02 * s[5]) + v_b * (j11 * s[4] + j12 * s[5]);
    const float v_j11 = v_b * (j00 * s[1] + j02 * s[4]) + v_c * (2 * j11 * s[3] + 2 * j12 * s[4]);
    const float v_j12 = v_b * (j00 * s[2] + j02 * s[5]) + v_c * (2 * j11 * s[4] + 2 * j12 * s[5]);
    // Jacobian entries and the projected mean as functions of (x, y, zs, tx, ty).
    const float zs = r.zs, z2 = zs * zs, x = r.p[0], y = r.p[1];
    float v_zs = -cam.fx / z2 * v_j00 - cam.fy / z2 * v_j11;
    const float v_tx = -cam.fx / z2 * v_j02, v_ty = -cam.fy / z2 * v_j12;
    v_zs += 2 * cam.fx * r.tx / (z2 * zs) * v_j02 + 2 * cam.fy * r.ty / (z2 * zs) * v_j12;
    float v_x = cam.fx / zs * v_mean2d[0], v_y = cam.fy / zs * v_mean2d[1];
    v_zs += -cam.fx * x / z2 * v_mean2d[0] - cam.fy * y / z2 * v_mean2d[1];
    // tx = zs * clamp(x / zs): through zs directly and through the ratio where not clamped.
    v_zs += r.rx * v_tx + r.ry * v_ty;
    const float v_rx = zs * v_tx * r.dx, v_ry = zs * v_ty * r.dy;
    v_x += v_rx / zs;
    v_y += v_ry / zs;
    v_zs += -x / z2 * v_rx - y / z2 * v_ry;
    v_p[0] = v_x;
    v_p[1] = v_y;
    v_p[2] = (r.in_depth ? v_zs : 0.f) + v_depth;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Projection entry points
// ------------------------------------------------------------------------------------------

std::vector<at::Tensor> project_fwd(const at::Tensor &means, const at::Tensor &quats,
                                    const at::Tensor &scales, const at::Tensor &opacities,
                                    const at::Tensor &viewmats, const at::Tensor &Ks,
                                    int64_t width, int64_t height, double eps2d,
                                    double near_plane, double far_plane) {
    check_float(means, "means", 2);
    check_float(quats, "quats", 2);
    check_float(scales, "scales", 2);
    check_float(opacities, "opacities", 1);
    check_float(viewmats, "viewmats", 3);
    check_float(Ks, "Ks", 3);
    const int64_t N = means.size(0), C = viewmats.size(0);
    const auto fopt = means.options();
    auto radii = at::empty({C, N, 2}, fopt.dtype(at::kInt));
    auto means2d = at::empty({C, N, 2}, fopt);
    auto depths = at::empty({C, N}, fopt);
    auto conics = at::empty({C, N, 3}, fopt);
    const std::vector<Camera> cams = load_cameras(viewmats, Ks, width, height);
    const float *mu = means.data_ptr<float>(), *q = quats.data_ptr<float>();
    const float *sc = scales.data_ptr<float>(), *op = opacities.data_ptr<float>();
    int32_t *o_radii = radii.data_ptr<int32_t>();
    float *o_m2d = means2d.data_ptr<float>(), *o_dep = depths.data_ptr<float>();
    float *o_con = conics.data_ptr<float>();
    const float e = static_cast<float>(eps2d);
    const float zn = static_cast<float>(near_plane), zf = static_cast<float>(far_plane);
    at::parallel_for(0, N, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            float qn[4];
            normalise_quat(q + 4 * n, qn);
            const WorldCovar wc = world_covar(qn, sc + 3 * n);
            for (int64_t c = 0; c < C; ++c) {
                const Projected r = project_one(cams[c], mu + 3 * n, wc.S, e, zn, zf);
                const int64_t i = c * N + n;
                radii_one(r, op[n], width, height, o_radii + 2 * i);
                o_m2d[2 * i] = r.mean2d[0];
                o_m2d[2 * i + 1] = r.mean2d[1];
                o_dep[i] = r.p[2];
                for (int k = 0; k < 3; ++k) o_con[3 * i + k] = r.conic[k];
            }
        }
    });
    return {radii, means2d, depths, conics};
}

std::vector<at::Tensor> project_bwd(const at::Tensor &means, const at::Tensor &quats,
                                    const at::Tensor &scales, const at::Tensor &viewmats,
                                    const at::Tensor &Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane,
                                    const at::Tensor &v_means2d, const at::Tensor &v_depths,
                                    const at::Tensor &v_conics, bool viewmats_grad) {
    check_float(v_means2d, "v_means2d", 3);
    check_float(v_depths, "v_depths", 2);
    check_float(v_conics, "v_conics", 3);
    const int64_t N = means.size(0), C = viewmats.size(0);
    const auto fopt = means.options();
    // Every entry is written inside the parallel loop: no separate zero-fill pass.
    auto v_means = at::empty({N, 3}, fopt);
    auto v_quats = at::empty({N, 4}, fopt);
    auto v_scales = at::empty({N, 3}, fopt);
    auto v_view = viewmats_grad ? at::zeros({C, N, 12}, fopt) : at::empty({0}, fopt);
    const std::vector<Camera> cams = load_cameras(viewmats, Ks, width, height);
    const float *mu = means.data_ptr<float>(), *q = quats.data_ptr<float>();
    const float *sc = scales.data_ptr<float>();
    const float *g_m2d = v_means2d.data_ptr<float>(), *g_dep = v_depths.data_ptr<float>();
    const float *g_con = v_conics.data_ptr<float>();
    float *o_mu = v_means.data_ptr<float>(), *o_q = v_quats.data_ptr<float>();
    float *o_s = v_scales.data_ptr<float>();
    float *o_view = viewmats_grad ? v_view.data_ptr<float>() : nullptr;
    const float e = static_cast<float>(eps2d);
    const float zn = static_cast<float>(near_plane), zf = static_cast<float>(far_plane);
    at::parallel_for(0, N, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            float qn[4];
            const float qnorm = normalise_quat(q + 4 * n, qn);
            const WorldCovar wc = world_covar(qn, sc + 3 * n);
            float v_s6[6] = {};
            float *vmu = o_mu + 3 * n, *vs = o_s + 3 * n;
            vmu[0] = vmu[1] = vmu[2] = vs[0] = vs[1] = vs[2] = 0.f;
            bool any = false;
            for (int64_t c = 0; c < C; ++c) {
                const int64_t i = c * N + n;
                const float *gm = g_m2d + 2 * i, *gc = g_con + 3 * i;
                // Culled entries usually get exactly zero upstream gradient: skip the work.
                if (gm[0] == 0.f && gm[1] == 0.f && g_dep[i] == 0.f && gc[0] == 0.f &&
                    gc[1] == 0.f && gc[2] == 0.f)
                    continue;
                any = true;
                const Camera &cam = cams[c];
                const Projected r = project_one(cam, mu + 3 * n, wc.S, e, zn, zf);
                float v_p[3], v_sc6[6];
                project_one_vjp(cam, r, gm, g_dep[i], gc, v_p, v_sc6);
                // p = R mean + t
                for (int k = 0; k < 3; ++k)
                    vmu[k] += cam.R.m[0][k] * v_p[0] + cam.R.m[1][k] * v_p[1] +
                                       cam.R.m[2][k] * v_p[2];
                // Sigma_c = R Sigma R^T: v_Sigma = R^T H R with H the symmetric gradient.
                const Mat3 H = sym_from_grad6(v_sc6);
                float Q6[6];
                Mat3 Rt;
                for (int a = 0; a < 3; ++a)
                    for (int b = 0; b < 3; ++b) Rt.m[a][b] = cam.R.m[b][a];
                congruence6(Rt, H, Q6);
                v_s6[0] += Q6[0];
                v_s6[1] += 2 * Q6[1];
                v_s6[2] += 2 * Q6[2];
                v_s6[3] += Q6[3];
                v_s6[4] += 2 * Q6[4];
                v_s6[5] += Q6[5];
                if (o_view) {  // v_R = v_p mean^T + 2 H R Sigma, v_t = v_p
                    float *gv = o_view + 12 * i;
                    float RS[3][3];
                    for (int a = 0; a < 3; ++a)
                        for (int b = 0; b < 3; ++b)
                            RS[a][b] = cam.R.m[a][0] * wc.S.m[0][b] +
                                       cam.R.m[a][1] * wc.S.m[1][b] + cam.R.m[a][2] * wc.S.m[2][b];
                    for (int a = 0; a < 3; ++a) {
                        for (int b = 0; b < 3; ++b)
                            gv[3 * a + b] = v_p[a] * mu[3 * n + b] +
                                            2 * (H.m[a][0] * RS[0][b] + H.m[a][1] * RS[1][b] +
                                                 H.m[a][2] * RS[2][b]);
                        gv[9 + a] = v_p[a];
                    }
                }
            }
            if (!any) {
                std::fill(o_q + 4 * n, o_q + 4 * n + 4, 0.f);
                continue;
            }
            // Sigma = M M^T, M = Rq diag(s): v_M = 2 H2 M.
            const Mat3 H2 = sym_from_grad6(v_s6);
            Mat3 vRq;
            for (int a = 0; a < 3; ++a) {
                for (int b = 0; b < 3; ++b) {
                    const float vM = 2 * (H2.m[a][0] * wc.M.m[0][b] + H2.m[a][1] * wc.M.m[1][b] +
                                          H2.m[a][2] * wc.M.m[2][b]);
                    vRq.m[a][b] = vM * sc[3 * n + b];
                    vs[b] += vM * wc.Rq.m[a][b];
                }
            }
            quat_rotmat_vjp(qn, qnorm, vRq, o_q + 4 * n);
        }
    });
    return {v_means, v_quats, v_scales, v_view};
}

// ------------------------------------------------------------------------------------------
// Spherical harmonics (degree 0..3, sh.py's basis and signs)
// ------------------------------------------------------------------------------------------

namespace {

constexpr float kC0 = 0.28209479177387814f;
constexpr float kC1 = 0.48860251190292f;
constexpr float kC2a = 0.5462742152960395f, kC2b = -1.092548430592079f;
constexpr float kC2c = 0.9461746957575601f, kC2d = 0.3153915652525201f;
constexpr float kC3a = -0.5900435899266435f, kC3b = 1.445305721320277f;
constexpr float kC3c = -2.285228997322329f, kC3d = 0.4570457994644658f;
constexpr float kC3e = 1.865881662950577f, kC3f = 1.119528997770346f;

// Basis values at a unit direction (x, y, z); with grad, also d basis / d (x, y, z).
void sh_basis(int degree, float x, float y, float z, float *b, float (*db)[3]) {
    b[0] = kC0;
    if (db) db[0][0] = db[0][1] = db[0][2] = 0.f;
    if (degree < 1) return;
    b[1] = -kC1 * y;
    b[2] = kC1 * z;
    b[3] = -kC1 * x;
    if (db) {
        for (int k = 1; k < 4; ++k) db[k][0] = db[k][1] = db[k][2] = 0.f;
        db[1][1] = -kC1;
        db[2][2] = kC1;
        db[3][0] = -kC1;
    }
    if (degree < 2) return;
    const float z2 = z * z, c1 = x * x - y * y, s1 = 2.f * x * y;
    const float b2 = kC2b * z;
    b[4] = kC2a * s1;
    b[5] = b2 * y;
    b[6] = kC2c * z2 - kC2d;
    b[7] = b2 * x;
    b[8] = kC2a * c1;
    if (db) {
        const float g[5][3] = {{kC2a * 2 * y, kC2a * 2 * x, 0.f},
                               {0.f, b2, kC2b * y},
                               {0.f, 0.f, 2 * kC2c * z},
                               {b2, 0.f, kC2b * x},
                               {kC2a * 2 * x, -kC2a * 2 * y, 0.f}};
        for (int k = 0; k < 5; ++k)
            for (int d = 0; d < 3; ++d) db[4 + k][d] = g[k][d];
    }
    if (degree < 3) return;
    const float c2 = x * c1 - y * s1, s2 = x * s1 + y * c1;
    const float c3 = kC3c * z2 + kC3d, b3 = kC3b * z;
    b[9] = kC3a * s2;
    b[10] = b3 * s1;
    b[11] = c3 * y;
    b[12] = z * (kC3e * z2 - kC3f);
    b[13] = c3 * x;
    b[14] = b3 * c1;
    b[15] = kC3a * c2;
    if (db) {
        const float dc3 = 2 * kC3c * z;
        const float g[7][3] = {{kC3a * 6 * x * y, kC3a * 3 * c1, 0.f},
                               {b3 * 2 * y, b3 * 2 * x, kC3b * s1},
                               {0.f, c3, dc3 * y},
                               {0.f, 0.f, 3 * kC3e * z2 - kC3f},
                               {c3, 0.f, dc3 * x},
                               {b3 * 2 * x, -b3 * 2 * y, kC3b * c1},
                               {kC3a * 3 * c1, -kC3a * 6 * x * y, 0.f}};
        for (int k = 0; k < 7; ++k)
            for (int d = 0; d < 3; ++d) db[9 + k][d] = g[k][d];
    }
}

struct ShShape {
    int64_t C, N, Cc, K, k;  // cameras, Gaussians, coefficient sets, stored K, used k
};

ShShape sh_shape(int64_t degree, const at::Tensor &means, const at::Tensor &campos,
                 const at::Tensor &coeffs) {
    TORCH_CHECK(degree >= 0 && degree <= 3, "fused SH supports degree 0..3, got ", degree);
    check_float(means, "means", 2);
    check_float(campos, "campos", 2);
    check_float(coeffs, "coeffs", 4);
    ShShape s{campos.size(0), means.size(0), coeffs.size(0), coeffs.size(2),
              (degree + 1) * (degree + 1)};
    TORCH_CHECK(s.Cc == 1 || s.Cc == s.C, "coeffs must have 1 or C leading entries");
    TORCH_CHECK(coeffs.size(1) == s.N && coeffs.size(3) == 3 && s.K >= s.k, "bad coeffs shape");
    return s;
}

// Unit view direction (F.normalize semantics); returns the unclamped norm.
float view_dir(const float *mean, const float *cam, float *raw, float *u) {
    for (int d = 0; d < 3; ++d) raw[d] = mean[d] - cam[d];
    const float n = std::sqrt(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2]);
    const float den = std::max(n, kNormEps);
    for (int d = 0; d < 3; ++d) u[d] = raw[d] / den;
    return n;
}

}  // namespace

at::Tensor sh_fwd(int64_t degree, const at::Tensor &means, const at::Tensor &campos,
                  const at::Tensor &coeffs) {
    const ShShape s = sh_shape(degree, means, campos, coeffs);
    auto colors = at::empty({s.C, s.N, 3}, means.options());
    const float *mu = means.data_ptr<float>(), *cp = campos.data_ptr<float>();
    const float *co = coeffs.data_ptr<float>();
    float *out = colors.data_ptr<float>();
    at::parallel_for(0, s.N, kGrain, [&](int64_t begin, int64_t end) {
        float b[16], raw[3], u[3];
        for (int64_t n = begin; n < end; ++n) {
            for (int64_t c = 0; c < s.C; ++c) {
                view_dir(mu + 3 * n, cp + 3 * c, raw, u);
                sh_basis(static_cast<int>(degree), u[0], u[1], u[2], b, nullptr);
                const float *cf = co + ((s.Cc == 1 ? 0 : c) * s.N + n) * s.K * 3;
                float *o = out + 3 * (c * s.N + n);
                for (int ch = 0; ch < 3; ++ch) {
                    float acc = 0.f;
                    for (int64_t k = 0; k < s.k; ++k) acc += b[k] * cf[3 * k + ch];
                    o[ch] = std::max(acc + 0.5f, 0.f);
                }
            }
        }
    });
    return colors;
}

std::vector<at::Tensor> sh_bwd(int64_t degree, const at::Tensor &means, const at::Tensor &campos,
                               const at::Tensor &coeffs, const at::Tensor &v_colors,
                               bool means_grad, bool campos_grad) {
    const ShShape s = sh_shape(degree, means, campos, coeffs);
    check_float(v_colors, "v_colors", 3);
    const bool want_means = means_grad && degree > 0, want_dirs = campos_grad && degree > 0;
    const auto fopt = means.options();
    // Written in full inside the parallel loop (no separate zero-fill pass over 16 x 3 x N).
    auto v_coeffs = at::empty_like(coeffs);
    auto v_means = want_means ? at::empty({s.N, 3}, fopt) : at::empty({0}, fopt);
    auto v_dirs = want_dirs ? at::empty({s.C, s.N, 3}, fopt) : at::empty({0}, fopt);
    const float *mu = means.data_ptr<float>(), *cp = campos.data_ptr<float>();
    const float *co = coeffs.data_ptr<float>(), *gcol = v_colors.data_ptr<float>();
    float *o_co = v_coeffs.data_ptr<float>();
    float *o_mu = want_means ? v_means.data_ptr<float>() : nullptr;
    float *o_dir = want_dirs ? v_dirs.data_ptr<float>() : nullptr;
    const bool need_db = want_means || want_dirs;
    at::parallel_for(0, s.N, kGrain, [&](int64_t begin, int64_t end) {
        float b[16], db[16][3], raw[3], u[3];
        for (int64_t n = begin; n < end; ++n) {
            for (int64_t cc = 0; cc < s.Cc; ++cc) {
                float *slice = o_co + (cc * s.N + n) * s.K * 3;
                std::fill(slice, slice + s.K * 3, 0.f);
            }
            float vm[3] = {0.f, 0.f, 0.f};
            for (int64_t c = 0; c < s.C; ++c) {
                const float norm = view_dir(mu + 3 * n, cp + 3 * c, raw, u);
                sh_basis(static_cast<int>(degree), u[0], u[1], u[2], b, need_db ? db : nullptr);
                const int64_t off = ((s.Cc == 1 ? 0 : c) * s.N + n) * s.K * 3;
                const float *cf = co + off;
                float *vcf = o_co + off;
                // clamp_min(x + 0.5, 0) passes the gradient where x + 0.5 >= 0 (autograd's rule).
                float g[3];
                for (int ch = 0; ch < 3; ++ch) {
                    float acc = 0.f;
                    for (int64_t k = 0; k < s.k; ++k) acc += b[k] * cf[3 * k + ch];
                    g[ch] = acc + 0.5f >= 0.f ? gcol[3 * (c * s.N + n) + ch] : 0.f;
                }
                float v_u[3] = {0.f, 0.f, 0.f};
                for (int64_t k = 0; k < s.k; ++k) {
                    float dot = 0.f;
                    for (int ch = 0; ch < 3; ++ch) {
                        vcf[3 * k + ch] += b[k] * g[ch];
                        dot += cf[3 * k + ch] * g[ch];
                    }
                    if (need_db)
                        for (int d = 0; d < 3; ++d) v_u[d] += dot * db[k][d];
                }
                if (!need_db) continue;
                float vd[3];  // d loss / d (mean - campos), through u = raw / max(|raw|, eps)
                if (norm > kNormEps) {
                    const float dot = v_u[0] * u[0] + v_u[1] * u[1] + v_u[2] * u[2];
                    for (int d = 0; d < 3; ++d) vd[d] = (v_u[d] - u[d] * dot) / norm;
                } else {
                    for (int d = 0; d < 3; ++d) vd[d] = v_u[d] / kNormEps;
                }
                for (int d = 0; d < 3; ++d) vm[d] += vd[d];
                if (o_dir)
                    for (int d = 0; d < 3; ++d) o_dir[3 * (c * s.N + n) + d] = vd[d];
            }
            if (o_mu)
                for (int d = 0; d < 3; ++d) o_mu[3 * n + d] = vm[d];
        }
    });
    return {v_coeffs, v_means, v_dirs};
}

}  // namespace splatbench
