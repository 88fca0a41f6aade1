// Fused per-Gaussian kernels of splatbench's CPU backend: EWA projection and SH colours.
//
// Declared here so that rasterize.cpp (which owns the one PYBIND11_MODULE of the extension) can
// bind them, while geometry.cpp compiles against the lighter ATen headers in parallel with it.

#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace splatbench {

// Forward projection (projection.py's fully_fused_projection, one pass over the Gaussians).
// Returns {radii [C, N, 2] int32, means2d [C, N, 2], depths [C, N], conics [C, N, 3]}.
std::vector<at::Tensor> project_fwd(const at::Tensor &means, const at::Tensor &quats,
                                    const at::Tensor &scales, const at::Tensor &opacities,
                                    const at::Tensor &viewmats, const at::Tensor &Ks,
                                    int64_t width, int64_t height, double eps2d,
                                    double near_plane, double far_plane);

// Vector-Jacobian product of the projection for upstream gradients of means2d, depths and
// conics. Returns {v_means [N, 3], v_quats [N, 4], v_scales [N, 3], v_viewmats}, the last
// [C, N, 12] (rotation rows then translation, summed over N by the caller) or empty.
std::vector<at::Tensor> project_bwd(const at::Tensor &means, const at::Tensor &quats,
                                    const at::Tensor &scales, const at::Tensor &viewmats,
                                    const at::Tensor &Ks, int64_t width, int64_t height,
                                    double eps2d, double near_plane, double far_plane,
                                    const at::Tensor &v_means2d, const at::Tensor &v_depths,
                                    const at::Tensor &v_conics, bool viewmats_grad);

// Colours clamp_min(SH(normalise(mean - campos)) + 0.5, 0) for degree 0..3.
// means [N, 3], campos [C, 3], coeffs [Cc, N, K, 3] with Cc in {1, C}. Returns [C, N, 3].
at::Tensor sh_fwd(int64_t degree, const at::Tensor &means, const at::Tensor &campos,
                  const at::Tensor &coeffs);

// Returns {v_coeffs [Cc, N, K, 3], v_means [N, 3] (summed over cameras), v_dirs [C, N, 3]
// (gradient w.r.t. mean - campos, for the camera centres)}; v_means / v_dirs are empty when
// not requested or when degree is 0 (no view dependence).
std::vector<at::Tensor> sh_bwd(int64_t degree, const at::Tensor &means, const at::Tensor &campos,
                               const at::Tensor &coeffs, const at::Tensor &v_colors,
                               bool means_grad, bool campos_grad);

}  // namespace splatbench
