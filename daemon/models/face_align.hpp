#pragma once
// Face alignment and paste-back for face restoration, as facexlib's FaceRestoreHelper does it
// (xinntao/facexlib utils/face_restoration_helper.py; upscale 1, face size 512, crop ratio 1, no face
// parsing), with OpenCV's numerics reproduced (shared/fixtures/README.md, gfpgan/):
// * the similarity transform from the 5 detector landmarks to the FFHQ template is OpenCV's
//   estimateAffinePartial2D with LMEDS: fixed-seed 2-point draws, float32 residuals, median, inlier
//   threshold, then the least-squares similarity over the inliers;
// * warpAffine (bilinear) is OpenCV's fixed-point warp: 1/32 px source positions, 15-bit weights for
//   uint8 images;
// * paste-back: warped face and warped ones mask, 2x2 erosion, a centre erosion and a Gaussian blur
//   sized from the face area, and the float32 blend truncated to uint8.
// Plain C++ on the CPU (no torch).
#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace heygem::models::face_align {

inline constexpr int kFaceSize = 512;

// Row-major 2x3 affine matrix [[m0, m1, m2], [m3, m4, m5]]: (x, y) -> (m0 x + m1 y + m2, m3 x + m4 y + m5).
using Affine = std::array<double, 6>;

// (x, y) pairs: left eye, right eye, nose, left and right mouth corner.
using Landmarks5 = std::array<float, 10>;

// FaceRestoreHelper.face_template for face size 512 (float64, as the helper holds it).
const std::array<double, 10>& ffhq_template_512();

struct SimilarityFit {
  Affine matrix{};                  // from -> to
  std::vector<bool> inliers;        // per point
  std::vector<std::array<int, 2>> draws;  // the point pairs LMEDS tried, in order
  float min_median = 0;             // smallest median of the squared residuals
  float inlier_threshold = 0;       // squared-residual bound of the inliers
};

// cv::estimateAffinePartial2D(from, to, method=LMEDS) with OpenCV's defaults (confidence 0.99).
// Points are (x, y) pairs, at least 2, both converted to float32 first as OpenCV does. The final
// matrix is the exact least-squares similarity over the inliers (OpenCV's Levenberg-Marquardt
// refinement converges to it). Throws std::invalid_argument for fewer than 2 points.
SimilarityFit estimate_similarity_lmeds(std::span<const double> from, std::span<const double> to);

// The helper's affine for one face: landmarks (frame pixels) -> the 512 crop.
SimilarityFit align_to_template(const Landmarks5& landmarks);

// cv::invertAffineTransform.
Affine invert_affine(const Affine& m);

// Packed 8-bit image, rows of width * channels bytes.
struct ImageU8 {
  int width = 0, height = 0, channels = 3;
  std::vector<std::uint8_t> pixels;
};

// Single-channel float32 image.
struct ImageF32 {
  int width = 0, height = 0;
  std::vector<float> pixels;
};

// A rectangle [x0, x1) x [y0, y1) of a frame.
struct Rect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int width() const { return x1 - x0; }
  int height() const { return y1 - y0; }
};

// cv::warpAffine(src, m, (width, height), INTER_LINEAR, BORDER_CONSTANT, border) restricted to the
// destination rectangle `area` (the result is area-sized). `border` has one value per channel.
ImageU8 warp_affine_u8(const ImageU8& src, const Affine& m, Rect area, std::span<const std::uint8_t> border);
// The same for a float32 image (border 0).
ImageF32 warp_affine_f32(const ImageF32& src, const Affine& m, Rect area);

// FaceRestoreHelper.align_warp_face: the 512x512 crop, border (135, 133, 132) (BGR).
ImageU8 warp_face(const ImageU8& frame_bgr, const Affine& affine);

// The paste-back masks over `area` of a width x height frame.
struct PasteMasks {
  Rect area;                 // where the face can touch the frame; outside it everything is 0
  ImageF32 erosion;          // inv_mask_erosion
  ImageF32 soft;             // inv_soft_mask
  double total_face_area = 0;
  int edge = 0;              // w_edge
};

// Where a face_size square pasted through `inverse_affine` can touch the frame (its corners' bounding
// box, 2 px wider, clipped to the frame).
Rect paste_reach(const Affine& inverse_affine, int face_size, int frame_width, int frame_height);
// `r` widened by `by` px on each side, clipped to the frame.
Rect widen_in_frame(Rect r, int by, int frame_width, int frame_height);
// w_edge of the helper from the eroded mask's area (float32, as numpy holds it).
int paste_edge(double total_face_area);
// cv::getGaussianKernel(ksize, 0) as OpenCV builds it for float32 images (values rounded to float32).
std::vector<double> gaussian_kernel(int ksize);

// Masks for pasting a face_size square back through `inverse_affine` (crop -> frame).
PasteMasks paste_masks(const Affine& inverse_affine, int face_size, int frame_width, int frame_height);

// FaceRestoreHelper.paste_faces_to_input_image for one face: blends the restored face (BGR, face
// size square) into `frame_bgr` in place: (soft * (erosion * warped) + (1 - soft) * frame), float32,
// truncated to uint8.
void paste_face(ImageU8& frame_bgr, const ImageU8& restored_bgr, const Affine& inverse_affine);

// The blend alone, over `area` of the frame, from warped face and masks of area size.
void blend(ImageU8& frame_bgr, const ImageU8& warped_face, const ImageF32& erosion, const ImageF32& soft, Rect area);

}  // namespace heygem::models::face_align
