// Fused in-place Adam and SGD updates on the GPU: the CUDA versions of kernels/adam.py.
//
// One thread per element reads param, grad and the state once and writes them back once;
// the formulas and their order of operations are those of adam_update_ref and
// sgd_update_ref (torch.optim). Scalars arrive already cast to T (float or double), so
// float32 parameters get float32 arithmetic, as in NumPy and PyTorch.

template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, T beta1, T one_minus_beta1,
                            T beta2, T one_minus_beta2, T step_size, T bc2_sqrt, T eps,
                            T weight_decay, long long total)
{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    T p = param[i];
    T g = grad[i] + weight_decay * p;
    T mi = beta1 * m[i] + one_minus_beta1 * g;        // m = beta1 m + (1 - beta1) g
    T vi = beta2 * v[i] + one_minus_beta2 * g * g;    // v = beta2 v + (1 - beta2) g^2
    m[i] = mi;
    v[i] = vi;
    param[i] = p - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
}

template <typename T>
__global__ void sgd_update(T* param, const T* grad, T* buf, T lr, T momentum, T weight_decay,
                           T one_minus_dampening, int nesterov, int first_step, long long total)
{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    T p = param[i];
    T d = grad[i] + weight_decay * p;
    if (momentum != T(0)) {  // buf is read and written only with momentum
        T b = first_step ? d : momentum * buf[i] + one_minus_dampening * d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
    }
    param[i] = p - lr * d;
}
