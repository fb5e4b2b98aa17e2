package dev.trilens.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.Fixtures;
import dev.trilens.TrilensException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class TrigramDatasetTest {

    private static TrigramDataset challenge() {
        return TrigramDataset.generate(75, 50, 0.05, 40, 2500);
    }

    @Test
    void challengeTrigramsMatchGoldenInGenerationOrder() {
        JsonNode golden = Fixtures.golden().get("trigrams_in_generation_order");
        TrigramDataset ds = challenge();
        assertThat(ds.nTrigrams()).isEqualTo(277).isEqualTo(golden.size());
        int[][] tri = ds.trigrams();
        for (int i = 0; i < tri.length; i++) {
            JsonNode g = golden.get(i);
            assertThat(tri[i]).as("trigram %d", i)
                    .containsExactly(g.get(0).asInt(), g.get(1).asInt(), g.get(2).asInt());
        }
    }

    @Test
    void challengeFirstSequencesMatchGolden() {
        JsonNode golden = Fixtures.golden().get("first_sequences");
        TrigramDataset ds = challenge();
        assertThat(golden.size()).isEqualTo(4);
        for (int s = 0; s < golden.size(); s++) {
            int[] expected = new int[50];
            for (int p = 0; p < 50; p++) {
                expected[p] = golden.get(s).get(p).asInt();
            }
            assertThat(ds.tokensOf(s, s + 1)).as("sequence %d", s).containsExactly(expected);
        }
    }

    @Test
    void challengeFirstSequenceBeginsAsDocumented() {
        // From the fixture README; needs no fixture file.
        int[] first = challenge().tokensOf(0, 1);
        assertThat(Arrays.copyOf(first, 10)).containsExactly(55, 7, 12, 10, 67, 56, 49, 0, 23, 19);
    }

    @Test
    void trigramCountIsComputedAsPythonDoes() {
        TrigramDataset ds = TrigramDataset.generate(75, 50, 0.05, 40, 1);
        assertThat(ds.nTrigrams()).isEqualTo(277);
        assertThat(ds.trigramProb()).isEqualTo(0.05);
        assertThat(TrigramDataset.generate(10, 5, 0.0, 1, 3).nTrigrams()).isZero();
    }

    @Test
    void countFactoryReproducesProbFactory() {
        TrigramDataset a = TrigramDataset.generate(75, 50, 0.05, 40, 100);
        TrigramDataset b = TrigramDataset.withTrigramCount(75, 50, 277, 40, 100);
        assertThat(b.trigrams()).isDeepEqualTo(a.trigrams());
        assertThat(b.tokens()).containsExactly(a.tokens());
        assertThat(b.trigramProb()).isNaN();
        assertThat(b.seed()).isEqualTo(40);
    }

    @Test
    void prefixOfSizeNIsTheSameDataset() {
        // Tokens are drawn row by row after the trigrams, so a smaller size gives the leading rows of a larger one.
        TrigramDataset small = TrigramDataset.generate(75, 50, 0.05, 40, 10);
        assertThat(small.tokens()).containsExactly(challenge().tokensOf(0, 10));
    }

    @Test
    void invariantsHoldForRandomConfigs() {
        Random rnd = new Random(2024);
        double[] probs = {0.0, 0.01, 0.05, 0.1, 0.2, 0.3};
        int forced = 0;
        int withoutTrigrams = 0;
        for (int k = 0; k < 60; k++) {
            int d = 5 + rnd.nextInt(36);
            int len = 3 + rnd.nextInt(28);
            double prob = probs[rnd.nextInt(probs.length)];
            int size = 1 + rnd.nextInt(60);
            long seed = rnd.nextLong();
            String cfg = "d=" + d + " len=" + len + " p=" + prob + " size=" + size + " seed=" + seed;
            TrigramDataset ds = TrigramDataset.generate(d, len, prob, seed, size);
            forced += checkInvariants(ds, cfg);
            withoutTrigrams += ds.trigrams().length == 0 ? 1 : 0;
        }
        // the per-position checks only bite where a trigram is completed, and the chain checks only with trigrams
        assertThat(forced).as("positions that complete a trigram, over all configs").isGreaterThan(100);
        assertThat(withoutTrigrams).as("configs without trigrams").isLessThan(30);
    }

    /** Returns how many positions complete a trigram, so callers can check the filtered assertions ran. */
    private static int checkInvariants(TrigramDataset ds, String cfg) {
        int d = ds.dVocab();
        int[][] tri = ds.trigrams();
        assertThat(tri.length).as(cfg).isEqualTo((int) (ds.trigramProb() * d * (d - 1)));
        Map<Integer, Integer> byPrefix = new HashMap<>();
        Set<Integer> suffixes = new HashSet<>();
        for (int[] t : tri) {
            assertThat(t).as(cfg).hasSize(3);
            assertInVocab(t, d, cfg);
            assertThat(byPrefix.put(t[0] * d + t[1], t[2])).as(cfg + " contradiction at %s", t[0] + "," + t[1])
                    .isNull();
            suffixes.add(t[1] * d + t[2]);
        }
        for (int[] t : tri) {
            // A self-loop (a, a, a) is allowed (see selfLoopTrigramsAreKept); chains between two trigrams are not.
            if (t[0] == t[1] && t[1] == t[2]) {
                continue;
            }
            assertThat(suffixes).as(cfg + " chain through pair %d,%d", t[0], t[1]).doesNotContain(t[0] * d + t[1]);
        }
        for (int a = 0; a < d; a++) {
            for (int b = 0; b < d; b++) {
                assertThat(ds.completionOf(a, b)).as(cfg).isEqualTo(byPrefix.getOrDefault(a * d + b, -1));
            }
        }
        int[] batch = ds.trigramBatch();
        assertThat(batch).as(cfg).hasSize(tri.length * 3);
        for (int i = 0; i < tri.length; i++) {
            assertThat(new int[] {batch[3 * i], batch[3 * i + 1], batch[3 * i + 2]}).containsExactly(tri[i]);
            // the row of the batch's [n * 3, d] logits the metrics read for trigram i: the one at b, after a
            int row = TrigramDataset.predictionRow(i, d);
            assertThat(row % d).as(cfg).isZero();
            assertThat(new int[] {batch[row / d - 1], batch[row / d]}).as(cfg).containsExactly(tri[i][0], tri[i][1]);
        }
        assertThat(ds.tokens()).as(cfg).hasSize(ds.size() * ds.seqLen());
        assertInVocab(ds.tokens(), d, cfg);
        int forcedSeen = 0;
        for (int s = 0; s < ds.size(); s++) {
            for (int p = 0; p < ds.seqLen(); p++) {
                boolean forced = p >= 2 && byPrefix.containsKey(ds.token(s, p - 2) * d + ds.token(s, p - 1));
                assertThat(ds.completesTrigram(s, p)).as(cfg).isEqualTo(forced);
                if (forced) {
                    forcedSeen++;
                    assertThat(ds.token(s, p)).as(cfg + " seq %d pos %d", s, p)
                            .isEqualTo(byPrefix.get(ds.token(s, p - 2) * d + ds.token(s, p - 1)));
                }
            }
        }
        return forcedSeen;
    }

    private static void assertInVocab(int[] values, int d, String cfg) {
        for (int v : values) {
            assertThat(v).as(cfg).isBetween(0, d - 1);
        }
    }

    @Test
    void selfLoopTrigramsAreKept() {
        // The README's chain rule compares a candidate only with trigrams already kept, so (a, a, a) passes: once
        // (a, a) appears the rest of the sequence is a. Seed 40 never draws one, so the golden data cannot say more.
        TrigramDataset ds = TrigramDataset.withTrigramCount(10, 12, 20, 13, 200);
        assertThat(ds.completionOf(4, 4)).isEqualTo(4);
        int runs = 0;
        for (int s = 0; s < ds.size(); s++) {
            for (int p = 0; p + 1 < ds.seqLen(); p++) {
                if (ds.token(s, p) == 4 && ds.token(s, p + 1) == 4) {
                    runs++;
                    for (int q = p; q < ds.seqLen(); q++) {
                        assertThat(ds.token(s, q)).as("seq %d pos %d", s, q).isEqualTo(4);
                    }
                    break;
                }
            }
        }
        assertThat(runs).isPositive();
    }

    @Test
    void sameSeedSameDataDifferentSeedDifferentData() {
        TrigramDataset a = TrigramDataset.generate(20, 12, 0.1, 7, 30);
        TrigramDataset b = TrigramDataset.generate(20, 12, 0.1, 7, 30);
        TrigramDataset c = TrigramDataset.generate(20, 12, 0.1, 8, 30);
        assertThat(b.tokens()).containsExactly(a.tokens());
        assertThat(c.tokens()).isNotEqualTo(a.tokens());
    }

    @Test
    void sliceAndTokensOfGiveSubRanges() {
        TrigramDataset ds = TrigramDataset.generate(30, 8, 0.1, 3, 20);
        TrigramDataset val = ds.slice(15, 20);
        assertThat(val.size()).isEqualTo(5);
        assertThat(val.tokens()).containsExactly(ds.tokensOf(15, 20));
        assertThat(val.trigrams()).isDeepEqualTo(ds.trigrams());
        for (int p = 0; p < 8; p++) {
            assertThat(val.token(0, p)).isEqualTo(ds.token(15, p));
            assertThat(val.completesTrigram(0, p)).isEqualTo(ds.completesTrigram(15, p));
        }
        assertThat(ds.tokensOf(3, 3)).isEmpty();
        assertThatThrownBy(() -> ds.tokensOf(5, 21)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> ds.slice(4, 4)).isInstanceOf(TrilensException.class).hasMessageContaining("empty");
    }

    @Test
    void trigramsAccessorReturnsACopy() {
        TrigramDataset ds = TrigramDataset.generate(30, 8, 0.1, 3, 2);
        int first = ds.trigrams()[0][2];
        ds.trigrams()[0][2] = first + 1;
        assertThat(ds.trigrams()[0][2]).isEqualTo(first);
    }

    @Test
    void rejectsBadShapes() {
        assertThatThrownBy(() -> TrigramDataset.generate(2, 10, 0.05, 1, 10))
                .isInstanceOf(TrilensException.class).hasMessageContaining("d_vocab must be >= 3, got 2");
        assertThatThrownBy(() -> TrigramDataset.generate(10, 2, 0.05, 1, 10))
                .isInstanceOf(TrilensException.class).hasMessageContaining("seq_len must be >= 3").hasMessageContaining("got 2");
        assertThatThrownBy(() -> TrigramDataset.generate(10, 10, 0.05, 1, 0))
                .isInstanceOf(TrilensException.class).hasMessageContaining("size must be >= 1").hasMessageContaining("got 0");
        assertThatThrownBy(() -> TrigramDataset.withTrigramCount(10, 10, -1, 1, 10))
                .isInstanceOf(TrilensException.class).hasMessageContaining("n_trigrams must be >= 0, got -1");
        assertThatThrownBy(() -> TrigramDataset.generate(10, 1000, 0.05, 1, 3_000_000))
                .isInstanceOf(TrilensException.class).hasMessageContaining("too large");
    }

    @Test
    void rejectsTrigramProbOutsideUnitInterval() {
        for (double p : new double[] {-0.1, 1.5, Double.NaN}) {
            assertThatThrownBy(() -> TrigramDataset.generate(10, 10, p, 1, 10))
                    .isInstanceOf(TrilensException.class)
                    .hasMessageContaining("trigram_prob must be in [0, 1]").hasMessageContaining(String.valueOf(p));
        }
    }

    @Test
    @Timeout(5)
    void impossibleTrigramSetsFailFast() {
        assertThatThrownBy(() -> TrigramDataset.generate(10, 20, 0.9, 40, 10))
                .isInstanceOf(TrilensException.class)
                .hasMessageContaining("n_trigrams=81").hasMessageContaining("d_vocab=10")
                .hasMessageContaining("lower trigram_prob");
        assertThatThrownBy(() -> TrigramDataset.withTrigramCount(10, 20, 101, 40, 10))
                .isInstanceOf(TrilensException.class)
                .hasMessageContaining("n_trigrams=101").hasMessageContaining("d_vocab=10");
        // Within the d*d bound but unbuildable: with every pair a prefix, no (b, c) is left that is not one too.
        assertThatThrownBy(() -> TrigramDataset.withTrigramCount(3, 5, 9, 1, 10))
                .isInstanceOf(TrilensException.class).hasMessageContaining("n_trigrams=9");
    }

    @Test
    void theGeneratorAfterTheDatasetContinuesTorchsGlobalStream() {
        // the challenge's script draws its split and shuffles from the generator the dataset leaves behind. In torch
        // (TorchReference's dataset(), which seeds the global generator): dataset(10, 5, 0.1, 1, 2), then
        // torch.randperm(7) -> [3, 6, 2, 1, 4, 0, 5]; dataset(75, 50, 0.05, 40, 3), then torch.randperm(8).
        assertThat(TrigramDataset.generate(10, 5, 0.1, 1, 2).generatorAfter().randperm(7))
                .containsExactly(3, 6, 2, 1, 4, 0, 5);
        TrigramDataset challengeShape = TrigramDataset.generate(75, 50, 0.05, 40, 3);
        assertThat(challengeShape.nTrigrams()).isEqualTo(277);
        assertThat(challengeShape.generatorAfter().randperm(8)).containsExactly(1, 2, 4, 0, 3, 7, 6, 5);
        // a fresh generator each call
        assertThat(challengeShape.generatorAfter().randperm(8)).containsExactly(1, 2, 4, 0, 3, 7, 6, 5);
    }

    @Test
    void completionOfRejectsOutOfRangeTokens() {
        TrigramDataset ds = TrigramDataset.generate(10, 5, 0.1, 1, 2);
        assertThatThrownBy(() -> ds.completionOf(10, 0))
                .isInstanceOf(TrilensException.class).hasMessageContaining("token 10").hasMessageContaining("d_vocab=10");
        assertThatThrownBy(() -> ds.completionOf(0, -1)).isInstanceOf(TrilensException.class);
    }
}
