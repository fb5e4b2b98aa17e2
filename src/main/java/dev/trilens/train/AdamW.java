package dev.trilens.train;

/**
 * {@code torch.optim.AdamW} (betas 0.9/0.999, eps 1e-8, no amsgrad) over one flat parameter array, following its
 * single-tensor CPU path step by step in float32 so a run tracks PyTorch's as closely as float rounding allows.
 */
public final class AdamW {
    public static final double BETA1 = 0.9;
    public static final double BETA2 = 0.999;
    public static final double EPS = 1e-8;

    private final double weightDecay;
    private final float[] m;
    private final float[] v;
    private long step;

    public AdamW(int size, double weightDecay) {
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("weight decay must be >= 0, got " + weightDecay);
        }
        this.weightDecay = weightDecay;
        this.m = new float[size];
        this.v = new float[size];
    }

    /** One update of params in place from grads; allocates nothing. */
    public void step(float[] params, float[] grads, double lr) {
        if (params.length != m.length || grads.length != m.length) {
            throw new IllegalArgumentException("expected " + m.length + " params and grads, got " + params.length
                    + " and " + grads.length);
        }
        step++;
        // PyTorch turns these Python floats into float32 scalars for the float32 kernels; do the same
        float decay = (float) (1 - lr * weightDecay);
        float oneMinusB1 = (float) (1 - BETA1);
        float b2 = (float) BETA2;
        float oneMinusB2 = (float) (1 - BETA2);
        double biasCorrection1 = 1 - Math.pow(BETA1, step);
        double biasCorrection2 = 1 - Math.pow(BETA2, step);
        float stepSize = (float) (lr / biasCorrection1);
        float bc2Sqrt = (float) Math.sqrt(biasCorrection2);
        float eps = (float) EPS;
        for (int i = 0; i < params.length; i++) {
            float g = grads[i];
            float p = params[i] * decay;             // decoupled weight decay first
            float mi = m[i] + oneMinusB1 * (g - m[i]); // exp_avg.lerp_(grad, 1 - beta1)
            float vi = v[i] * b2 + oneMinusB2 * g * g;
            float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
            params[i] = p - stepSize * (mi / denom);
            m[i] = mi;
            v[i] = vi;
        }
    }

    /** Steps taken so far (PyTorch's state["step"]). */
    public long stepCount() {
        return step;
    }

    /** First-moment state; the live array, for saving. */
    public float[] m() {
        return m;
    }

    /** Second-moment state; the live array, for saving. */
    public float[] v() {
        return v;
    }

    /** Restores saved state so the next step continues exactly where the saved optimizer left off. */
    public void restore(float[] savedM, float[] savedV, long savedStep) {
        if (savedM.length != m.length || savedV.length != v.length || savedStep < 0) {
            throw new IllegalArgumentException("optimizer state of " + savedM.length + "/" + savedV.length
                    + " values at step " + savedStep + " does not fit " + m.length + " parameters");
        }
        System.arraycopy(savedM, 0, m, 0, m.length);
        System.arraycopy(savedV, 0, v, 0, v.length);
        step = savedStep;
    }
}
