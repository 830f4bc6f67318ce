#include "daemon/models/face_align.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace heygem::models::face_align {
namespace {

// cvRound: nearest, ties to even (the FPU's default rounding mode).
int cv_round(double value) { return static_cast<int>(std::nearbyint(value)); }

// cv::RNG: multiply-with-carry, state seeded with 2^64 - 1 inside the LMEDS call.
class CvRng {
 public:
  explicit CvRng(std::uint64_t state) : state_(state) {}
  std::uint32_t next() {
    state_ = static_cast<std::uint64_t>(static_cast<std::uint32_t>(state_)) * 4164903690ULL + (state_ >> 32);
    return static_cast<std::uint32_t>(state_);
  }
  int uniform(int a, int b) { return a == b ? a : static_cast<int>(next() % static_cast<std::uint32_t>(b - a)) + a; }

 private:
  std::uint64_t state_;
};

struct Point {
  double x, y;
};

// Least-squares similarity [[a, -b, c], [b, a, d]] mapping from[i] -> to[i] over the selected points
// (exact for two points).
Affine fit_similarity(const std::vector<Point>& from, const std::vector<Point>& to, const std::vector<int>& use) {
  double mx = 0, my = 0, mu = 0, mv = 0;
  for (int i : use) {
    mx += from[i].x, my += from[i].y, mu += to[i].x, mv += to[i].y;
  }
  const double n = static_cast<double>(use.size());
  mx /= n, my /= n, mu /= n, mv /= n;
  double norm = 0, dot = 0, cross = 0;
  for (int i : use) {
    const double x = from[i].x - mx, y = from[i].y - my, u = to[i].x - mu, v = to[i].y - mv;
    norm += x * x + y * y;
    dot += x * u + y * v;
    cross += x * v - y * u;
  }
  const double a = norm > 0 ? dot / norm : 0, b = norm > 0 ? cross / norm : 0;
  return {a, -b, mu - a * mx + b * my, b, a, mv - b * mx - a * my};
}

// OpenCV's residuals: the model cast to float32, float32 arithmetic.
std::vector<float> squared_errors(const Affine& model, const std::vector<Point>& from, const std::vector<Point>& to) {
  const float f0 = static_cast<float>(model[0]), f1 = static_cast<float>(model[1]), f2 = static_cast<float>(model[2]);
  const float f3 = static_cast<float>(model[3]), f4 = static_cast<float>(model[4]), f5 = static_cast<float>(model[5]);
  std::vector<float> errors(from.size());
  for (std::size_t i = 0; i < from.size(); ++i) {
    const float x = static_cast<float>(from[i].x), y = static_cast<float>(from[i].y);
    float a = f0 * x;
    a = a + f1 * y;
    a = a + f2;
    a = a - static_cast<float>(to[i].x);
    float b = f3 * x;
    b = b + f4 * y;
    b = b + f5;
    b = b - static_cast<float>(to[i].y);
    errors[i] = a * a + b * b;
  }
  return errors;
}

// Separable min filter along one axis of an area-sized image whose surroundings inside the frame are 0
// and whose pixels outside the frame are ignored (OpenCV's erode border). Offsets lo..hi.
ImageF32 min_filter(const ImageF32& src, Rect area, int frame_w, int frame_h, int lo, int hi, bool horizontal) {
  ImageF32 out{src.width, src.height, std::vector<float>(src.pixels.size())};
  for (int y = 0; y < src.height; ++y) {
    for (int x = 0; x < src.width; ++x) {
      float m = std::numeric_limits<float>::infinity();
      for (int d = lo; d <= hi; ++d) {
        const int sx = horizontal ? x + d : x, sy = horizontal ? y : y + d;
        const int fx = sx + area.x0, fy = sy + area.y0;
        if (fx < 0 || fy < 0 || fx >= frame_w || fy >= frame_h) continue;
        const float v = (sx < 0 || sy < 0 || sx >= src.width || sy >= src.height)
                            ? 0.0f
                            : src.pixels[static_cast<std::size_t>(sy) * src.width + sx];
        m = std::min(m, v);
        if (m == 0.0f) break;
      }
      out.pixels[static_cast<std::size_t>(y) * src.width + x] = m;
    }
  }
  return out;
}

int reflect101(int p, int size) {
  if (size == 1) return 0;
  while (p < 0 || p >= size) p = p < 0 ? -p : 2 * size - 2 - p;
  return p;
}

// cv::GaussianBlur(src, (k, k), 0) over an area-sized image (0 around it inside the frame, BORDER_REFLECT_101
// at the frame's edges). Computed in double; the result is rounded to float32.
ImageF32 gaussian_blur(const ImageF32& src, Rect area, int frame_w, int frame_h, int ksize) {
  const int r = ksize / 2;
  const std::vector<double> kernel = gaussian_kernel(ksize);
  auto at = [&](int fx, int fy) -> double {  // frame coordinates, already inside the frame
    const int sx = fx - area.x0, sy = fy - area.y0;
    if (sx < 0 || sy < 0 || sx >= src.width || sy >= src.height) return 0.0;
    return src.pixels[static_cast<std::size_t>(sy) * src.width + sx];
  };
  // Rows first, over the area widened by r rows so that the column pass has its taps.
  const int rows0 = area.y0 - r, rows = src.height + 2 * r;
  std::vector<double> horizontal(static_cast<std::size_t>(rows) * src.width);
  for (int j = 0; j < rows; ++j) {
    const int fy = reflect101(rows0 + j, frame_h);
    for (int x = 0; x < src.width; ++x) {
      double acc = 0;
      for (int k = -r; k <= r; ++k) acc += kernel[k + r] * at(reflect101(area.x0 + x + k, frame_w), fy);
      horizontal[static_cast<std::size_t>(j) * src.width + x] = acc;
    }
  }
  // The row pass must see each frame row at its reflected position; rows outside the widened band
  // are reached only through reflection at the frame's edges, and those are inside the band again.
  auto row_value = [&](int fy, int x) -> double {
    const int j = fy - rows0;
    if (j >= 0 && j < rows) return horizontal[static_cast<std::size_t>(j) * src.width + x];
    double acc = 0;
    for (int k = -r; k <= r; ++k) acc += kernel[k + r] * at(reflect101(area.x0 + x + k, frame_w), fy);
    return acc;
  };
  ImageF32 out{src.width, src.height, std::vector<float>(src.pixels.size())};
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x) {
      double acc = 0;
      for (int k = -r; k <= r; ++k) acc += kernel[k + r] * row_value(reflect101(area.y0 + y + k, frame_h), x);
      out.pixels[static_cast<std::size_t>(y) * src.width + x] = static_cast<float>(acc);
    }
  return out;
}

// Destination pixels whose source position can fall inside a src_w x src_h source: the bounding box of
// the source corners mapped by `m`, widened by 2 px and clipped to the frame.
Rect reach(const Affine& m, int src_w, int src_h, int frame_w, int frame_h, int margin) {
  double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
  for (double sx : {-1.0, static_cast<double>(src_w)})
    for (double sy : {-1.0, static_cast<double>(src_h)}) {
      const double x = m[0] * sx + m[1] * sy + m[2], y = m[3] * sx + m[4] * sy + m[5];
      x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    }
  Rect r;
  r.x0 = std::clamp(static_cast<int>(std::floor(x0)) - margin, 0, frame_w);
  r.y0 = std::clamp(static_cast<int>(std::floor(y0)) - margin, 0, frame_h);
  r.x1 = std::clamp(static_cast<int>(std::ceil(x1)) + 1 + margin, r.x0, frame_w);
  r.y1 = std::clamp(static_cast<int>(std::ceil(y1)) + 1 + margin, r.y0, frame_h);
  return r;
}

Rect widen(Rect r, int by, int frame_w, int frame_h) {
  return Rect{std::max(0, r.x0 - by), std::max(0, r.y0 - by), std::min(frame_w, r.x1 + by), std::min(frame_h, r.y1 + by)};
}

// The OpenCV fixed-point source position of one destination pixel: integer pixel and 1/32 fractions.
struct Tap {
  int sx, sy, fx, fy;
};

template <class Visit>
void for_each_tap(const Affine& m, Rect area, Visit&& visit) {
  const Affine inv = invert_affine(m);
  std::vector<int> adelta(static_cast<std::size_t>(area.width())), bdelta(adelta.size());
  for (int x = 0; x < area.width(); ++x) {
    adelta[x] = cv_round(inv[0] * (x + area.x0) * 1024);
    bdelta[x] = cv_round(inv[3] * (x + area.x0) * 1024);
  }
  for (int y = 0; y < area.height(); ++y) {
    const int fy = y + area.y0;
    const int x0 = cv_round((inv[1] * fy + inv[2]) * 1024) + 16;
    const int y0 = cv_round((inv[4] * fy + inv[5]) * 1024) + 16;
    for (int x = 0; x < area.width(); ++x) {
      const int X = (x0 + adelta[x]) >> 5, Y = (y0 + bdelta[x]) >> 5;
      visit(x, y, Tap{X >> 5, Y >> 5, X & 31, Y & 31});
    }
  }
}

}  // namespace

std::vector<double> gaussian_kernel(int ksize) {
  const double sigma = ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  std::vector<double> kernel(static_cast<std::size_t>(ksize));
  double sum = 0;
  for (int i = 0; i < ksize; ++i) {
    const double x = i - (ksize - 1) * 0.5;
    kernel[i] = std::exp(-0.5 / (sigma * sigma) * x * x);
    sum += kernel[i];
  }
  for (auto& k : kernel) k = static_cast<float>(k / sum);  // OpenCV's float32 kernel
  return kernel;
}

Rect paste_reach(const Affine& inverse_affine, int face_size, int frame_width, int frame_height) {
  return reach(inverse_affine, face_size, face_size, frame_width, frame_height, 2);
}

Rect widen_in_frame(Rect r, int by, int frame_width, int frame_height) { return widen(r, by, frame_width, frame_height); }

int paste_edge(double total_face_area) {
  const double area = static_cast<float>(total_face_area);
  return static_cast<int>(std::sqrt(area)) / 20;
}

const std::array<double, 10>& ffhq_template_512() {
  static const std::array<double, 10> kTemplate{192.98138, 239.94708, 318.90277, 240.1936, 256.63416,
                                                314.01935, 201.26117, 371.41043, 313.08905, 371.15118};
  return kTemplate;
}

SimilarityFit estimate_similarity_lmeds(std::span<const double> from_xy, std::span<const double> to_xy) {
  if (from_xy.size() != to_xy.size() || from_xy.size() % 2 != 0 || from_xy.size() < 4)
    throw std::invalid_argument("estimate_similarity_lmeds: expected two equal lists of at least 2 points");
  const int count = static_cast<int>(from_xy.size() / 2);
  std::vector<Point> from(count), to(count);
  for (int i = 0; i < count; ++i) {  // OpenCV converts both point sets to float32
    from[i] = {static_cast<float>(from_xy[2 * i]), static_cast<float>(from_xy[2 * i + 1])};
    to[i] = {static_cast<float>(to_xy[2 * i]), static_cast<float>(to_xy[2 * i + 1])};
  }
  SimilarityFit fit;
  fit.inliers.assign(count, false);
  constexpr int kModelPoints = 2;
  std::vector<int> all(count);
  for (int i = 0; i < count; ++i) all[i] = i;
  if (count == kModelPoints) {
    fit.matrix = fit_similarity(from, to, all);
    fit.inliers.assign(count, true);
    return fit;
  }
  // LMeDS: outlier ratio 0.45, confidence 0.99 -> cvRound(log(1 - 0.99) / log(1 - 0.55^2)) iterations.
  const double confidence = 0.99, inlier_ratio = 1.0 - 0.45;
  const int iterations =
      cv_round(std::log(1.0 - confidence) / std::log(1.0 - std::pow(inlier_ratio, kModelPoints)));
  CvRng rng(~std::uint64_t{0});
  double min_median = std::numeric_limits<double>::max();
  Affine best{};
  for (int iter = 0; iter < iterations; ++iter) {
    const int a = rng.uniform(0, count);
    int b = rng.uniform(0, count);
    while (b == a) b = rng.uniform(0, count);
    fit.draws.push_back({a, b});
    const Affine model = fit_similarity(from, to, {a, b});
    std::vector<float> errors = squared_errors(model, from, to);
    std::nth_element(errors.begin(), errors.begin() + count / 2, errors.end());
    const double median = errors[count / 2];
    if (median < min_median) {
      min_median = median;
      best = model;
    }
  }
  fit.min_median = static_cast<float>(min_median);
  const double sigma = std::max(2.5 * 1.4826 * (1 + 5.0 / (count - kModelPoints)) * std::sqrt(min_median), 0.001);
  fit.inlier_threshold = static_cast<float>(sigma * sigma);
  const std::vector<float> errors = squared_errors(best, from, to);
  std::vector<int> inliers;
  for (int i = 0; i < count; ++i)
    if (errors[i] <= fit.inlier_threshold) {
      fit.inliers[i] = true;
      inliers.push_back(i);
    }
  fit.matrix = inliers.size() >= kModelPoints ? fit_similarity(from, to, inliers) : best;
  return fit;
}

SimilarityFit align_to_template(const Landmarks5& landmarks) {
  std::array<double, 10> from{};
  for (int i = 0; i < 10; ++i) from[i] = landmarks[i];
  return estimate_similarity_lmeds(from, ffhq_template_512());
}

Affine invert_affine(const Affine& m) {
  double d = m[0] * m[4] - m[1] * m[3];
  d = d != 0 ? 1.0 / d : 0.0;
  const double a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
  const double b1 = -a11 * m[2] - a12 * m[5];
  const double b2 = -a21 * m[2] - a22 * m[5];
  return {a11, a12, b1, a21, a22, b2};
}

ImageU8 warp_affine_u8(const ImageU8& src, const Affine& m, Rect area, std::span<const std::uint8_t> border) {
  const int cn = src.channels;
  if (static_cast<int>(border.size()) != cn) throw std::invalid_argument("warp_affine_u8: one border value per channel");
  ImageU8 out{area.width(), area.height(), cn,
              std::vector<std::uint8_t>(static_cast<std::size_t>(area.width()) * area.height() * cn)};
  for_each_tap(m, area, [&](int x, int y, Tap t) {
    // 15-bit weights (32 - fy)(32 - fx) * 32 ...; the full weight 32768 does not fit OpenCV's short table.
    int w[4] = {(32 - t.fy) * (32 - t.fx) * 32, (32 - t.fy) * t.fx * 32, t.fy * (32 - t.fx) * 32, t.fy * t.fx * 32};
    if (w[0] == 32768) w[0] = 32767;
    std::uint8_t* dst = &out.pixels[(static_cast<std::size_t>(y) * area.width() + x) * cn];
    for (int c = 0; c < cn; ++c) {
      int acc = 0;
      for (int k = 0; k < 4; ++k) {
        const int sx = t.sx + (k & 1), sy = t.sy + (k >> 1);
        const bool inside = sx >= 0 && sy >= 0 && sx < src.width && sy < src.height;
        const int v = inside ? src.pixels[(static_cast<std::size_t>(sy) * src.width + sx) * cn + c] : border[c];
        acc += w[k] * v;
      }
      dst[c] = static_cast<std::uint8_t>(std::clamp((acc + 16384) >> 15, 0, 255));
    }
  });
  return out;
}

ImageF32 warp_affine_f32(const ImageF32& src, const Affine& m, Rect area) {
  ImageF32 out{area.width(), area.height(), std::vector<float>(static_cast<std::size_t>(area.width()) * area.height())};
  for_each_tap(m, area, [&](int x, int y, Tap t) {
    const float fx = static_cast<float>(t.fx) * (1.0f / 32), fy = static_cast<float>(t.fy) * (1.0f / 32);
    const float w[4] = {(1.0f - fy) * (1.0f - fx), (1.0f - fy) * fx, fy * (1.0f - fx), fy * fx};
    float acc = 0;
    for (int k = 0; k < 4; ++k) {
      const int sx = t.sx + (k & 1), sy = t.sy + (k >> 1);
      const bool inside = sx >= 0 && sy >= 0 && sx < src.width && sy < src.height;
      acc = acc + (inside ? src.pixels[static_cast<std::size_t>(sy) * src.width + sx] : 0.0f) * w[k];
    }
    out.pixels[static_cast<std::size_t>(y) * area.width() + x] = acc;
  });
  return out;
}

ImageU8 warp_face(const ImageU8& frame_bgr, const Affine& affine) {
  static constexpr std::uint8_t kBorder[3] = {135, 133, 132};
  return warp_affine_u8(frame_bgr, affine, Rect{0, 0, kFaceSize, kFaceSize}, kBorder);
}

PasteMasks paste_masks(const Affine& inverse_affine, int face_size, int frame_width, int frame_height) {
  PasteMasks masks;
  const Rect face_area = paste_reach(inverse_affine, face_size, frame_width, frame_height);
  const ImageF32 ones{face_size, face_size,
                      std::vector<float>(static_cast<std::size_t>(face_size) * face_size, 1.0f)};
  const ImageF32 warped = warp_affine_f32(ones, inverse_affine, face_area);
  // erode(ones(2, 2)): anchor (1, 1), min over x-1..x, y-1..y.
  ImageF32 erosion = min_filter(min_filter(warped, face_area, frame_width, frame_height, -1, 0, true), face_area,
                                frame_width, frame_height, -1, 0, false);
  double area = 0;
  for (float v : erosion.pixels) area += v;
  masks.total_face_area = static_cast<float>(area);
  masks.edge = paste_edge(masks.total_face_area);
  const int w = masks.edge;
  // The blur spreads the mask by w px beyond its support; widen the working area by as much.
  masks.area = widen_in_frame(face_area, w + 2, frame_width, frame_height);
  ImageF32 grown{masks.area.width(), masks.area.height(),
                 std::vector<float>(static_cast<std::size_t>(masks.area.width()) * masks.area.height(), 0.0f)};
  for (int y = 0; y < erosion.height; ++y)
    for (int x = 0; x < erosion.width; ++x)
      grown.pixels[static_cast<std::size_t>(y + face_area.y0 - masks.area.y0) * grown.width + x + face_area.x0 -
                   masks.area.x0] = erosion.pixels[static_cast<std::size_t>(y) * erosion.width + x];
  masks.erosion = grown;
  if (w > 0) {
    // erode(ones(2w, 2w)): anchor (w, w), min over x-w..x+w-1.
    const ImageF32 center = min_filter(min_filter(grown, masks.area, frame_width, frame_height, -w, w - 1, true),
                                       masks.area, frame_width, frame_height, -w, w - 1, false);
    masks.soft = gaussian_blur(center, masks.area, frame_width, frame_height, 2 * w + 1);
  } else {
    // ones((0, 0)) erodes nothing and GaussianBlur with ksize 1 is the identity.
    masks.soft = grown;
  }
  return masks;
}

void blend(ImageU8& frame_bgr, const ImageU8& warped_face, const ImageF32& erosion, const ImageF32& soft, Rect area) {
  const int cn = frame_bgr.channels;
  for (int y = 0; y < area.height(); ++y)
    for (int x = 0; x < area.width(); ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * area.width() + x;
      const float s = soft.pixels[i], e = erosion.pixels[i];
      std::uint8_t* f = &frame_bgr.pixels[(static_cast<std::size_t>(y + area.y0) * frame_bgr.width + x + area.x0) * cn];
      for (int c = 0; c < cn; ++c) {
        const float pasted = e * static_cast<float>(warped_face.pixels[i * cn + c]);
        const float face = s * pasted;
        const float keep = (1.0f - s) * static_cast<float>(f[c]);
        const float value = face + keep;
        f[c] = static_cast<std::uint8_t>(std::clamp(value, 0.0f, 255.0f));  // truncation, as astype(uint8)
      }
    }
}

void paste_face(ImageU8& frame_bgr, const ImageU8& restored_bgr, const Affine& inverse_affine) {
  const PasteMasks masks = paste_masks(inverse_affine, restored_bgr.width, frame_bgr.width, frame_bgr.height);
  static constexpr std::uint8_t kZero[4] = {0, 0, 0, 0};
  const ImageU8 warped = warp_affine_u8(restored_bgr, inverse_affine, masks.area,
                                        std::span<const std::uint8_t>(kZero, static_cast<std::size_t>(restored_bgr.channels)));
  blend(frame_bgr, warped, masks.erosion, masks.soft, masks.area);
}

}  // namespace heygem::models::face_align
