#pragma once
// A mixed-radix (Cooley-Tukey, decimation in time) complex FFT in double precision for any size;
// sizes with small prime factors (the mel's 800 = 2^5 * 5^2) are fast. Internal to heygem_media,
// exposed for its tests.
#include <complex>
#include <cstddef>
#include <vector>

namespace heygem::media {

class Fft {
 public:
  explicit Fft(size_t size);
  size_t size() const { return size_; }
  // out[k] = sum_j in[j] * exp(-2 pi i j k / n); `in` and `out` must not overlap.
  void forward(const std::complex<double>* in, std::complex<double>* out) const;

 private:
  void transform(const std::complex<double>* in, std::complex<double>* out, size_t n, size_t stride,
                 size_t level) const;

  size_t size_;
  std::vector<size_t> radices_;                // factorisation of size_, outermost first
  std::vector<std::complex<double>> twiddles_;  // exp(-2 pi i k / size_), k < size_
};

}  // namespace heygem::media
