// Softmax cross-entropy on the GPU: the CUDA versions of kernels/cross_entropy.py.
//
// Forward is one block: each thread takes whole rows (row r, r + blockDim, ...), computes
// the row's log softmax in the reference's order (maximum off first, then log of the sum
// of exp), writes logp and adds -logp[r, target] to its partial sum; the block then sums
// the partials in shared memory (a fixed tree, so the result never varies) and thread 0
// writes the mean. A target outside [0, c) makes its row's term NaN and sets *bad; the
// host reads that flag later, so no launch waits for the GPU. One block is plenty for
// classifier outputs (a 256 x 1000 ImageNet batch is 256k exps).
// Backward is one thread per logit: (exp(logp) - onehot) * g / n, g read from the device.

#define CE_THREADS 256

template <typename T>
__global__ void cross_entropy_forward(const T* z, const long long* targets, T* logp, T* loss,
                                      int* bad, int n, int c)
{
    __shared__ double partial[CE_THREADS];
    double sum = 0.0;
    int any_bad = 0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        const T* zr = z + (long long)r * c;
        T* lr = logp + (long long)r * c;
        T m = zr[0];
        for (int j = 1; j < c; ++j) m = zr[j] > m ? zr[j] : m;
        T s = T(0);
        for (int j = 0; j < c; ++j) s += exp(zr[j] - m);
        T lse = log(s);
        for (int j = 0; j < c; ++j) lr[j] = (zr[j] - m) - lse;
        long long t = targets[r];
        if (t < 0 || t >= c) {
            any_bad = 1;
            sum += nan("");
        } else {
            sum -= (double)lr[t];
        }
    }
    partial[threadIdx.x] = sum;
    any_bad = __syncthreads_or(any_bad);
    for (int width = CE_THREADS / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        *loss = (T)(partial[0] / n);
        *bad = any_bad;
    }
}

template <typename T>
__global__ void cross_entropy_backward(const T* logp, const long long* targets, const T* g,
                                       T* grad, int n, int c, long long total)
{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long r = i / c;
    T p = exp(logp[i]);
    if (targets[r] == i - r * c) p -= T(1);
    grad[i] = p * (g[0] / T(n));
}
