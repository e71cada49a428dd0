// im2col and col2im on the GPU (NCHW): the CUDA versions of kernels/im2col.py.
//
// cols is the (N*OH*OW, C*kh*kw) matrix of im2col_ref: rows run over (n, oy, ox), columns
// over (c, ky, kx), both in C order. Output (oy, ox) at kernel offset (ky, kx) reads input
// (oy*sh - ph + ky, ox*sw - pw + kx); outside the image it reads a padded zero.
// T is float or double; kernels/im2col_cuda.py launches one thread per item.

template <typename T>
__global__ void im2col(const T* x, T* cols, int channels, int h, int w, int kh, int kw,
                       int sh, int sw, int ph, int pw, int oh, int ow, long long total)
{
    // one thread per element of cols: consecutive threads write consecutive columns
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int k = channels * kh * kw;
    long long row = i / k;
    int col = (int)(i % k);
    int kx = col % kw, ky = (col / kw) % kh, c = col / (kh * kw);
    int ox = (int)(row % ow), oy = (int)(row / ow % oh);
    long long n = row / ((long long)oh * ow);
    int iy = oy * sh - ph + ky, ix = ox * sw - pw + kx;
    bool inside = 0 <= iy && iy < h && 0 <= ix && ix < w;
    cols[i] = inside ? x[((n * channels + c) * h + iy) * w + ix] : T(0);
}

template <typename T>
__global__ void col2im(const T* cols, T* dx, int channels, int h, int w, int kh, int kw,
                       int sh, int sw, int ph, int pw, int oh, int ow, long long total)
{
    // one thread per element of dx gathers every (oy, ox, ky, kx) that read it: no two
    // threads write the same element, so no atomics, and the sum runs in (ky, kx) order
    // like col2im_ref's, so the two agree to the last bit
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int ix = (int)(i % w), iy = (int)(i / w % h), c = (int)(i / ((long long)w * h) % channels);
    long long n = i / ((long long)w * h * channels);
    int k = channels * kh * kw;
    T sum = T(0);
    for (int ky = 0; ky < kh; ++ky) {
        int ty = iy + ph - ky;  // equals oy*sh when output row oy reads input row iy at ky
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int tx = ix + pw - kx;
            if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
            long long row = (n * oh + ty / sh) * ow + tx / sw;
            sum += cols[row * k + (c * kh + ky) * kw + kx];
        }
    }
    dx[i] = sum;
}
