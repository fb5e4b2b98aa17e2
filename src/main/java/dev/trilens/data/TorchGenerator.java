package dev.trilens.data;

/**
 * PyTorch's CPU generator ({@code CPUGeneratorImpl}): MT19937 in the state {@code torch.manual_seed(seed)} leaves it
 * in, and the CPU algorithms that draw from it which trilens reproduces bit for bit: {@code randint} for small
 * ranges, {@code torch.empty((), dtype=torch.int64).random_()} (how a DataLoader and a RandomSampler draw their
 * seeds), {@code torch.randperm}, and {@code tensor.normal_} on a float32 tensor (how TransformerLens initialises
 * weights). Each method names the torch call it stands for and how many 32-bit outputs it consumes, since matching
 * torch means consuming the stream exactly as it does.
 *
 * <p>Not thread-safe: like torch's generator it is one sequential stream.
 */
public final class TorchGenerator {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;
    /** torch.randperm on CPU keeps its original swap algorithm below this n (both 1.13 and 2.x). */
    static final long RANDPERM_SMALL_N = 0xffffffffL / 20;
    /** 2 pi as torch's AVX2 normal kernel holds it: the double rounded to float. */
    private static final float TWO_PI = (float) (2.0 * Math.PI);

    private final int[] mt = new int[N];
    private int index;
    /** The second value of the last Box-Muller pair drawn by {@link #normalDouble}, as torch caches it. */
    private double cachedNormal;
    private boolean hasCachedNormal;

    /** {@code torch.manual_seed(seed)}: init_genrand on the low 32 bits of the seed, and no cached normal. */
    public TorchGenerator(long seed) {
        mt[0] = (int) seed;
        for (int j = 1; j < N; j++) {
            mt[j] = 1812433253 * (mt[j - 1] ^ (mt[j - 1] >>> 30)) + j;
        }
        index = N;
    }

    /** The next tempered 32-bit output, as an unsigned value ({@code generator->random()}). */
    public long next32() {
        if (index >= N) {
            twist();
        }
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /** Discards n outputs, as if n values had been drawn with {@link #next32}. */
    public void skip(long n) {
        for (long i = 0; i < n; i++) {
            next32();
        }
    }

    /** {@code generator->random64()}: two outputs, the first as the high word. */
    public long next64() {
        long hi = next32();
        return (hi << 32) | next32();
    }

    /** A value in [0, n) exactly as {@code torch.randint(0, n, ...)} draws it on CPU: one 32-bit output mod n. */
    public int randint(int n) {
        if (n <= 0) {
            throw new IllegalArgumentException("randint bound must be positive, got " + n);
        }
        return (int) (next32() % n);
    }

    /**
     * {@code torch.empty((), dtype=torch.int64).random_()}: random64() mod 2^63, so a value in [0, 2^63). Two
     * outputs. This is how a DataLoader iterator draws its base seed and a RandomSampler its shuffle seed.
     */
    public long randomInt64() {
        return next64() & Long.MAX_VALUE;
    }

    /** {@code uniform_real_distribution<float>(0, 1)}: the low 24 bits of one output, times 2^-24. */
    public float uniformFloat() {
        return (next32() & 0xffffff) * 0x1p-24f;
    }

    /** {@code uniform_real_distribution<double>(0, 1)}: the low 53 bits of random64(), times 2^-53. */
    public double uniformDouble() {
        return (next64() & ((1L << 53) - 1)) * 0x1p-53;
    }

    /**
     * {@code torch.randperm(n, generator=g)} on CPU: the identity, then for i = 0 .. n-2 swap element i with element
     * i + (random() mod (n - i)). n - 1 outputs.
     */
    public int[] randperm(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("randperm size must be >= 0, got " + n);
        }
        if (n >= RANDPERM_SMALL_N) {
            // torch switches to another algorithm there, and versions differ in which; nothing here needs it
            throw new IllegalArgumentException("randperm of " + n + " elements is not reproduced; expected fewer than "
                    + RANDPERM_SMALL_N);
        }
        int[] r = new int[n];
        for (int i = 0; i < n; i++) {
            r[i] = i;
        }
        for (int i = 0; i < n - 1; i++) {
            int z = (int) (next32() % (n - i));
            int t = r[i];
            r[i] = r[i + z];
            r[i + z] = t;
        }
        return r;
    }

    /**
     * {@code at::normal_distribution<double>}: Box-Muller on two double uniforms (four outputs), returning
     * r cos(theta) and caching r sin(theta) for the next call, as torch's generator does. A standard normal.
     */
    public double normalDouble() {
        if (hasCachedNormal) {
            hasCachedNormal = false;
            return cachedNormal;
        }
        double u1 = uniformDouble();
        double u2 = uniformDouble();
        double r = StrictMath.sqrt(-2.0 * StrictMath.log(1.0 - u2));
        double theta = 2.0 * Math.PI * u1;
        cachedNormal = r * StrictMath.sin(theta);
        hasCachedNormal = true;
        return r * StrictMath.cos(theta);
    }

    /**
     * {@code t.normal_(mean, std)} on a contiguous float32 tensor t of n elements stored at out[offset ..]:
     * <ul>
     *   <li>n >= 16 ({@code normal_fill}): every element gets a float uniform (one output each), then each block
     *       of 16 becomes 16 normals by Box-Muller, element j paired with j + 8 (u1 = 1 - u[j] for the radius,
     *       u[j + 8] for the angle). If n is not a multiple of 16, the last 16 elements draw fresh uniforms and are
     *       transformed again as one block, overwriting the normals already there.</li>
     *   <li>n < 16: element by element from {@link #normalDouble} (cache included), times std plus mean, rounded
     *       to float.</li>
     * </ul>
     * The n >= 16 path is torch's AVX2 kernel, which it runs on any x86 CPU with AVX2 (torch 1.13 runs it under its
     * AVX512 capability too), reproduced bit for bit with {@link CephesFloat}. On a CPU without AVX2 torch evaluates
     * glibc's logf, cosf and sinf instead, which differ from these in the last bits of some elements. The n < 16
     * path uses fdlibm's double functions where torch uses glibc's; rounded to float they agreed in every case
     * tested.
     */
    public void normal(float[] out, int offset, int n, double mean, double std) {
        if (n >= 16) {
            float m = (float) mean, s = (float) std;
            for (int i = 0; i < n; i++) {
                out[offset + i] = uniformFloat();
            }
            for (int i = 0; i + 16 <= n; i += 16) {
                normalFill16(out, offset + i, m, s);
            }
            if (n % 16 != 0) {
                int last = offset + n - 16;
                for (int i = 0; i < 16; i++) {
                    out[last + i] = uniformFloat();
                }
                normalFill16(out, last, m, s);
            }
        } else {
            for (int i = 0; i < n; i++) {
                out[offset + i] = (float) (normalDouble() * std + mean);
            }
        }
    }

    /**
     * One block of torch's AVX2 {@code normal_fill_16}: for j < 8, u1 = 1 - u[j] (in (0, 1]) and u2 = u[j + 8]
     * give radius sqrt(-2 log u1) and angle float(2 pi) u2, and the pair becomes radius cos, radius sin, each times
     * std plus mean in one fused step. Logarithm, sine and cosine are torch's float approximations.
     */
    private static void normalFill16(float[] data, int at, float mean, float std) {
        float[] sc = new float[2];
        for (int j = 0; j < 8; j++) {
            float u1 = 1f - data[at + j];
            float u2 = data[at + j + 8];
            float radius = (float) Math.sqrt(-2f * CephesFloat.log(u1));
            CephesFloat.sincos(TWO_PI * u2, sc);
            data[at + j] = Math.fma(radius * sc[1], std, mean);
            data[at + j + 8] = Math.fma(radius * sc[0], std, mean);
        }
    }

    private void twist() {
        for (int k = 0; k < N; k++) {
            int y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
        }
        index = 0;
    }
}
