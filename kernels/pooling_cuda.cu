// 2-D max and average pooling on the GPU (NCHW): the CUDA versions of kernels/pooling.py.
//
// x is read as N*C planes of h*w; output (oy, ox) pools the window that starts at
// (oy*sh - ph, ox*sw - pw). Max pooling skips the padding (it would hold -inf) and keeps,
// per output, the flat index iy*w + ix of the chosen input in its plane; average pooling
// counts the padded zeros, so every window divides by kh*kw (count_include_pad).
// T is float or double; kernels/pooling_cuda.py launches one thread per item.

template <typename T>
__global__ void maxpool_forward(const T* x, T* out, long long* argmax, int h, int w,
                                int kh, int kw, int sh, int sw, int ph, int pw,
                                int oh, int ow, long long total)
{
    // one thread per output
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int ox = (int)(i % ow), oy = (int)(i / ow % oh);
    const T* plane = x + i / ((long long)oh * ow) * h * w;
    int y0 = max(oy * sh - ph, 0), y1 = min(oy * sh - ph + kh, h);
    int x0 = max(ox * sw - pw, 0), x1 = min(ox * sw - pw + kw, w);
    int best_idx = y0 * w + x0;
    T best = plane[best_idx];
    for (int iy = y0; iy < y1; ++iy) {
        for (int ix = x0; ix < x1; ++ix) {
            T v = plane[iy * w + ix];
            if (v > best || v != v) {  // strict: the first maximum wins; a NaN always does
                best = v;
                best_idx = iy * w + ix;
            }
        }
    }
    out[i] = best;
    argmax[i] = best_idx;
}

template <typename T>
__global__ void maxpool_backward(const T* dout, const long long* argmax, T* dx,
                                 int h, int w, int oh, int ow, long long total)
{
    // one thread per output routes its gradient to the chosen input; dx starts at zero.
    // Windows that do not overlap (stride >= kernel, as in LeNet) never share an input,
    // so each add lands alone and the result is exact; overlapping ones add atomically.
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long chosen = argmax[i];
    if (chosen < 0 || chosen >= (long long)h * w) return;  // never write outside the plane
    long long plane = i / ((long long)oh * ow);
    atomicAdd(dx + plane * h * w + chosen, dout[i]);
}

template <typename T>
__global__ void avgpool_forward(const T* x, T* out, int h, int w, int kh, int kw,
                                int sh, int sw, int ph, int pw, int oh, int ow,
                                long long total)
{
    // one thread per output; sums in (ky, kx) order like avgpool2d_forward_ref
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int ox = (int)(i % ow), oy = (int)(i / ow % oh);
    const T* plane = x + i / ((long long)oh * ow) * h * w;
    int y0 = max(oy * sh - ph, 0), y1 = min(oy * sh - ph + kh, h);
    int x0 = max(ox * sw - pw, 0), x1 = min(ox * sw - pw + kw, w);
    T total_in_window = T(0);
    for (int iy = y0; iy < y1; ++iy)
        for (int ix = x0; ix < x1; ++ix)
            total_in_window += plane[iy * w + ix];
    out[i] = total_in_window / T(kh * kw);  // padded zeros still count
}

template <typename T>
__global__ void avgpool_backward(const T* dout, T* dx, int h, int w, int kh, int kw,
                                 int sh, int sw, int ph, int pw, int oh, int ow,
                                 long long total)
{
    // one thread per input element gathers dout/(kh*kw) from every window that holds it:
    // no atomics, and the (ky, kx) order of avgpool2d_backward_ref
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int ix = (int)(i % w), iy = (int)(i / w % h);
    const T* dout_plane = dout + i / ((long long)h * w) * oh * ow;
    T sum = T(0);
    for (int ky = 0; ky < kh; ++ky) {
        int ty = iy + ph - ky;  // equals oy*sh when window oy holds row iy at offset ky
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int tx = ix + pw - kx;
            if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
            sum += dout_plane[(ty / sh) * ow + tx / sw] / T(kh * kw);
        }
    }
    dx[i] = sum;
}
