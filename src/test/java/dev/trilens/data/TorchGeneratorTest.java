package dev.trilens.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class TorchGeneratorTest {

    @Test
    void seed40Mod75MatchesTorchRandint() {
        // torch.manual_seed(40); torch.randint(0, 75, (27,)) -- also the first nine golden trigrams.
        int[] expected = {13, 53, 35, 12, 12, 4, 11, 63, 36, 7, 26, 60, 67, 6, 72, 28, 61, 6, 17, 1, 12, 54, 49, 65,
            5, 67, 59};
        TorchGenerator g = new TorchGenerator(40);
        int[] got = new int[expected.length];
        for (int i = 0; i < got.length; i++) {
            got[i] = g.randint(75);
        }
        assertThat(got).containsExactly(expected);
    }

    @Test
    void matchesMt19937Reference() {
        TorchGenerator g = new TorchGenerator(5489);
        assertThat(g.next32()).isEqualTo(3499211612L);
        // C++ [rand.predef]: the 10000th output of a default-seeded mt19937 is 4123659995 (crosses many twists).
        for (int i = 2; i < 10000; i++) {
            g.next32();
        }
        assertThat(g.next32()).isEqualTo(4123659995L);
    }

    @Test
    void usesLow32BitsOfSeed() {
        TorchGenerator a = new TorchGenerator(40);
        TorchGenerator b = new TorchGenerator(40 + (7L << 32));
        for (int i = 0; i < 1000; i++) {
            assertThat(b.next32()).isEqualTo(a.next32());
        }
    }

    @Test
    void outputsAreUnsigned32Bit() {
        TorchGenerator g = new TorchGenerator(123);
        for (int i = 0; i < 2000; i++) {
            assertThat(g.next32()).isBetween(0L, 0xffffffffL);
        }
    }

    @Test
    void rejectsNonPositiveBound() {
        TorchGenerator g = new TorchGenerator(1);
        assertThatThrownBy(() -> g.randint(0)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0");
        assertThatThrownBy(() -> g.randint(-3)).isInstanceOf(IllegalArgumentException.class);
    }

    // The expected values below were printed by PyTorch 1.13.1 (Debian's python3-torch, x86-64 with AVX2);
    // TorchParityTest compares whole streams against torch wherever it is installed.

    @Test
    void int64RandomMatchesTorch() {
        // torch.manual_seed(40); [torch.empty((), dtype=torch.int64).random_().item() for _ in range(3)]
        TorchGenerator g = new TorchGenerator(40);
        assertThat(new long[] {g.randomInt64(), g.randomInt64(), g.randomInt64()})
                .containsExactly(7520498209192261851L, 1021323187448133797L, 5322529050545937848L);
        TorchGenerator h = new TorchGenerator(40);
        h.skip(4);
        assertThat(h.randomInt64()).as("two outputs per draw").isEqualTo(5322529050545937848L);
    }

    @Test
    void uniformFloatIsTheLow24BitsOfOneOutput() {
        // torch.manual_seed(40); torch.empty(3).uniform_()
        TorchGenerator g = new TorchGenerator(40);
        assertThat(new float[] {g.uniformFloat(), g.uniformFloat(), g.uniformFloat()})
                .containsExactly(0.3678783178329468f, 0.8661019206047058f, 0.17370647192001343f);
    }

    @Test
    void randpermMatchesTorch() {
        // g = torch.Generator(); g.manual_seed(40); p = torch.randperm(100000, generator=g)
        int[] p = new TorchGenerator(40).randperm(100_000);
        assertThat(Arrays.copyOf(p, 6)).containsExactly(2438, 21864, 93, 84091, 66988, 33519);
        assertThat(Arrays.copyOfRange(p, p.length - 4, p.length)).containsExactly(59227, 48085, 21196, 94611);
        long weighted = 0;
        for (int i = 0; i < p.length; i++) {
            weighted += (long) i * p[i];
        }
        assertThat(weighted).isEqualTo(249742404658524L);
        assertThat(new TorchGenerator(1).randperm(1)).containsExactly(0);
        assertThat(new TorchGenerator(1).randperm(0)).isEmpty();
    }

    @Test
    void consecutiveRandpermsLeaveTheGeneratorWhereTorchDoes() {
        // each epoch's shuffle draws from where the previous one stopped: n - 1 outputs for randperm(n), none for
        // n = 1. g = torch.Generator(); g.manual_seed(40); then torch.randperm(n, generator=g) for n = 5, 5, 1, 6:
        TorchGenerator g = new TorchGenerator(40);
        assertThat(g.randperm(5)).containsExactly(3, 4, 1, 2, 0);
        assertThat(g.randperm(5)).containsExactly(2, 1, 4, 0, 3);
        assertThat(g.randperm(1)).containsExactly(0);
        assertThat(g.randperm(6)).containsExactly(0, 3, 4, 1, 5, 2);
    }

    @Test
    void randpermRefusesSizesWhereTorchSwitchesAlgorithm() {
        // torch's randperm_cpu keeps this algorithm only for n < 0xffffffff / 20; from there on its output differs
        assertThatThrownBy(() -> new TorchGenerator(1).randperm((int) TorchGenerator.RANDPERM_SMALL_N))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("214748364 elements")
                .hasMessageContaining("expected fewer than 214748364");
        assertThatThrownBy(() -> new TorchGenerator(1).randperm(-1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("got -1");
    }

    @Test
    void normalCoversTheBlockTailAndCachedScalarPaths() {
        // torch.manual_seed(7); torch.empty(17).normal_(); torch.empty(5).normal_(); torch.empty(3).normal_()
        // 17: 16 normals, then the last 16 redrawn; 5 and 3: the scalar path, whose fifth value is cached and
        // comes back as the first of the next tensor
        TorchGenerator g = new TorchGenerator(7);
        float[] a = new float[17], b = new float[5], c = new float[3];
        g.normal(a, 0, 17, 0, 1);
        g.normal(b, 0, 5, 0, 1);
        g.normal(c, 0, 3, 0, 1);
        assertThat(a).containsExactly(-0.8201345205307007f, -0.32456663250923157f, 1.9263681173324585f,
                -0.3300117254257202f, 0.19844505190849304f, 0.7820726633071899f, 1.0391076803207397f,
                -0.7245107293128967f, -0.8489086031913757f, -0.21534152328968048f, -1.8157286643981934f,
                -0.3452419638633728f, -2.0614778995513916f, 0.6741006970405579f, -1.3233457803726196f,
                -1.3597689867019653f, -0.866701602935791f);
        assertThat(b).containsExactly(-1.4157475233078003f, -0.4855290949344635f, 0.1736421138048172f,
                -1.2732713222503662f, 1.0841875076293945f);
        assertThat(c).containsExactly(0.15805619955062866f, -1.113755702972412f, 0.2855384051799774f);
    }

    @Test
    void normalWritesOnlyItsRangeAndAFreshSeedForgetsTheCache() {
        float[] buf = new float[40];
        Arrays.fill(buf, 9f);
        new TorchGenerator(3).normal(buf, 10, 20, 0, 1);
        for (int i = 0; i < 40; i++) {
            if (i < 10 || i >= 30) {
                assertThat(buf[i]).as("outside [10, 30)").isEqualTo(9f);
            } else {
                assertThat(buf[i]).as("element %d", i).isNotEqualTo(9f).isBetween(-7f, 7f);
            }
        }
        TorchGenerator g = new TorchGenerator(3);
        float[] one = new float[1];
        g.normal(one, 0, 1, 0, 1); // leaves a cached value behind
        float[] again = new float[1];
        new TorchGenerator(3).normal(again, 0, 1, 0, 1);
        assertThat(again[0]).isEqualTo(one[0]);
    }

    @Test
    void normalWithMeanAndStdMatchesTorchAtTheBlockBoundaries() {
        // torch 1.13: torch.manual_seed(seed); torch.empty(n).normal_(mean, std) -- n = 16 is the first block-path
        // size, n = 32 a whole number of blocks (no redrawn tail), n = 7 the scalar path; mean and std not 0 and 1.
        assertNormal(5, 16, 1.5, 2.0, new float[] {5.184659957885742f, 2.5377743244171143f, -1.9238426685333252f,
            -1.9027585983276367f, 5.538838863372803f, 0.9627711176872253f, 1.2385649681091309f,
            -1.3748276233673096f, 2.28153657913208f, 1.462064504623413f, -1.2053747177124023f,
            0.038364410400390625f, 3.475844383239746f, 0.6611841320991516f, 0.33020830154418945f,
            -0.06467020511627197f});
        assertNormal(6, 32, -0.5, 0.25, new float[] {-0.8028261661529541f, -0.3424103558063507f,
            -0.867825984954834f, -0.8337997198104858f, -0.6224167346954346f, -0.4670644700527191f,
            -0.4176257252693176f, -0.4183926582336426f, -0.6201376914978027f, -0.2242099642753601f,
            0.13712650537490845f, -0.42484116554260254f, -0.6358045339584351f, -0.7710323333740234f,
            -0.13469085097312927f, -0.906982421875f, -0.8700177073478699f, -0.7657663822174072f,
            -0.40924638509750366f, -0.40013325214385986f, -0.4635855555534363f, -0.6836193799972534f,
            -0.7468138933181763f, -0.03719523549079895f, -0.8359334468841553f, -0.28661829233169556f,
            -0.2797163128852844f, -0.6630475521087646f, -0.35475775599479675f, -0.4109799861907959f,
            -0.49598848819732666f, -0.39953580498695374f});
        assertNormal(7, 7, 3.0, 0.5, new float[] {2.926602363586426f, 3.393070697784424f, 3.4734108448028564f,
            2.4428279399871826f, 3.845395088195801f, 2.552586078643799f, 2.8221874237060547f});
    }

    private static void assertNormal(long seed, int n, double mean, double std, float[] torch) {
        float[] got = new float[n + 2];
        new TorchGenerator(seed).normal(got, 1, n, mean, std);
        for (int i = 0; i < n; i++) {
            assertThat(got[i + 1]).as("seed %d n %d element %d", seed, n, i).isCloseTo(torch[i], within(2e-6f));
        }
        assertThat(got[0]).isZero();
        assertThat(got[n + 1]).isZero();
    }

    @Test
    void cephesLogAndSincosStayCloseToTheTrueValues() {
        // they are approximations (torch's), so only closeness is checked here; bits are checked through normal
        float[] sc = new float[2];
        for (float x : new float[] {1e-7f, 0.01f, 0.5f, 0.70710677f, 0.9999999f, 1f}) {
            assertThat((double) CephesFloat.log(x)).as("log %s", x).isCloseTo(Math.log(x),
                    within(1e-6 * Math.max(1, Math.abs(Math.log(x)))));
        }
        assertThat(CephesFloat.log(0f)).isNaN();
        for (float x = 0f; x < 6.3f; x += 0.37f) {
            CephesFloat.sincos(x, sc);
            assertThat((double) sc[0]).as("sin %s", x).isCloseTo(Math.sin(x), within(2e-7));
            assertThat((double) sc[1]).as("cos %s", x).isCloseTo(Math.cos(x), within(2e-7));
        }
    }
}
