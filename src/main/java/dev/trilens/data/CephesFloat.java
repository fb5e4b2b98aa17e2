package dev.trilens.data;

/**
 * The float logarithm and sine/cosine that PyTorch's AVX2 CPU kernel for {@code normal_} evaluates: the algorithms
 * of Julien Pommier's avx_mathfun (Cephes polynomials and constants), which torch ships as
 * ATen/native/cpu/avx_mathfun.h, written out here lane by lane in float arithmetic so that
 * {@link TorchGenerator#normal} is bit-identical to torch. Where GCC fuses a product into the following addition
 * (it compiles torch with FMA contraction on), the step here is a {@link Math#fma}; every other step rounds to float
 * on its own, as the vector instructions do.
 *
 * <p>These are approximations (errors of an ulp or more, and large relative errors of cosine near its zeros);
 * they are here to reproduce torch, not to compute logarithms.
 */
final class CephesFloat {
    private CephesFloat() {
    }

    private static final float SQRT_HALF = 0.707106781186547524f;
    /** log(1 + x) ~ x - x^2/2 + x^3 P(x) on [sqrt(1/2) - 1, sqrt(2) - 1], P of degree 8 (coefficients high first). */
    private static final float[] LOG_P = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f,
        -1.2420140846E-1f, 1.4249322787E-1f, -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f,
        3.3333331174E-1f};
    /** ln 2 split in two: a short head (exact times small integers) and a correction. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;

    /** 4 / pi, and pi / 4 in three parts for the reduction x - j pi/4. */
    private static final float FOUR_OVER_PI = 1.27323954473516f;
    private static final float PI4_A = -0.78515625f;
    private static final float PI4_B = -2.4187564849853515625e-4f;
    private static final float PI4_C = -3.77489497744594108e-8f;
    private static final float SIN_P0 = -1.9515295891E-4f, SIN_P1 = 8.3321608736E-3f, SIN_P2 = -1.6666654611E-1f;
    private static final float COS_P0 = 2.443315711809948E-005f, COS_P1 = -1.388731625493765E-003f,
            COS_P2 = 4.166664568298827E-002f;

    /** Natural logarithm of x > 0 (NaN for x <= 0), denormals treated as the smallest normal. */
    static float log(float x) {
        if (!(x > 0)) {
            return Float.NaN;
        }
        x = Math.max(x, Float.MIN_NORMAL);
        int bits = Float.floatToRawIntBits(x);
        // x = m 2^e with m in [0.5, 1)
        float e = (float) ((bits >>> 23) - 0x7f) + 1f;
        float m = Float.intBitsToFloat((bits & ~0x7f800000) | Float.floatToRawIntBits(0.5f));
        // fold m into [sqrt(1/2), sqrt(2)) and take f = m - 1 (both steps exact)
        float f;
        if (m < SQRT_HALF) {
            e -= 1f;
            f = (m - 1f) + m;
        } else {
            f = m - 1f;
        }
        float z = f * f;
        float y = LOG_P[0];
        for (int k = 1; k < LOG_P.length; k++) {
            y = Math.fma(y, f, LOG_P[k]);
        }
        y = y * f;
        y = Math.fma(y, z, e * LN2_LO);
        y = Math.fma(z, -0.5f, y);
        return Math.fma(e, LN2_HI, f + y);
    }

    /** {sin x, cos x} for finite x of moderate size (the reduction is exact only for |x| up to a few thousand). */
    static void sincos(float x, float[] out) {
        float sign = Math.copySign(1f, x);
        x = Math.abs(x);
        // j = the nearest even integer above x / (pi/4), truncated first as the vector conversion does
        int j = ((int) (x * FOUR_OVER_PI) + 1) & ~1;
        float jf = j;
        boolean swapSinSign = (j & 4) != 0;
        boolean sinFromSinPoly = (j & 2) == 0;
        boolean cosNegative = ((~(j - 2)) & 4) != 0;
        // x - j pi/4 in extended precision, each product fused into its addition
        x = Math.fma(jf, PI4_A, x);
        x = Math.fma(jf, PI4_B, x);
        x = Math.fma(jf, PI4_C, x);
        float z = x * x;

        float c = Math.fma(COS_P0, z, COS_P1);
        c = Math.fma(c, z, COS_P2);
        c = c * z;
        c = Math.fma(c, z, -(z * 0.5f));
        c = c + 1f;

        float s = Math.fma(SIN_P0, z, SIN_P1);
        s = Math.fma(s, z, SIN_P2);
        s = s * z;
        s = Math.fma(s, x, x);

        float sin = sinFromSinPoly ? s : c;
        float cos = sinFromSinPoly ? c : s;
        if (swapSinSign) {
            sign = -sign;
        }
        out[0] = sign < 0 ? -sin : sin;
        out[1] = cosNegative ? -cos : cos;
    }
}
