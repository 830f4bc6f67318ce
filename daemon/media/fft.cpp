#include "daemon/media/fft.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "common/errors.hpp"

namespace heygem::media {
namespace {

std::vector<size_t> factorise(size_t n) {
  std::vector<size_t> radices;
  for (size_t radix : {4, 2, 3, 5}) {
    while (n % radix == 0) {
      radices.push_back(radix);
      n /= radix;
    }
  }
  for (size_t p = 7; n > 1; p += 2) {
    while (n % p == 0) {
      radices.push_back(p);
      n /= p;
    }
  }
  return radices;
}

}  // namespace

Fft::Fft(size_t size) : size_(size), radices_(factorise(size)), twiddles_(size) {
  if (size == 0) throw Error(ErrorCode::invalid_argument, "FFT size must be positive");
  for (size_t k = 0; k < size; ++k) {
    const double angle = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(size);
    twiddles_[k] = {std::cos(angle), std::sin(angle)};
  }
}

void Fft::forward(const std::complex<double>* in, std::complex<double>* out) const { transform(in, out, size_, 1, 0); }

// DFT of n points in[0], in[stride], ... into out[0..n): split into `radix` interleaved
// sub-sequences, transform each into its block of `out`, then combine with radix-point DFTs.
void Fft::transform(const std::complex<double>* in, std::complex<double>* out, size_t n, size_t stride,
                    size_t level) const {
  if (n == 1) {
    out[0] = in[0];
    return;
  }
  const size_t radix = radices_[level];
  const size_t m = n / radix;
  for (size_t j = 0; j < radix; ++j) transform(in + j * stride, out + j * m, m, stride * radix, level + 1);

  const size_t step = size_ / n;       // W_n^e = twiddles_[e * step]
  const size_t radix_step = size_ / radix;  // W_radix^e = twiddles_[e * radix_step]
  std::complex<double> terms[16];
  std::vector<std::complex<double>> large_terms(radix > 16 ? radix : 0);
  std::complex<double>* t = radix > 16 ? large_terms.data() : terms;
  for (size_t k = 0; k < m; ++k) {
    for (size_t j = 0; j < radix; ++j) t[j] = out[j * m + k] * twiddles_[(j * k * step) % size_];
    if (radix == 2) {
      out[k] = t[0] + t[1];
      out[k + m] = t[0] - t[1];
    } else if (radix == 4) {
      const std::complex<double> a = t[0] + t[2], b = t[0] - t[2], c = t[1] + t[3];
      const std::complex<double> d = t[1] - t[3];
      const std::complex<double> minus_i_d{d.imag(), -d.real()};  // -i * d
      out[k] = a + c;
      out[k + m] = b + minus_i_d;
      out[k + 2 * m] = a - c;
      out[k + 3 * m] = b - minus_i_d;
    } else {
      for (size_t q = 0; q < radix; ++q) {
        std::complex<double> sum = t[0];
        for (size_t j = 1; j < radix; ++j) sum += t[j] * twiddles_[((j * q) % radix) * radix_step];
        out[k + q * m] = sum;
      }
    }
  }
}

}  // namespace heygem::media
