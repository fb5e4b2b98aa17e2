package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import dev.trilens.train.Metrics;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrigramExtractorTest {

    @TempDir
    Path tmp;

    @Test
    void readsTheChallengeModelsTableWithFullPrecision() {
        TrigramExtractor.Result r = TrigramExtractorTestModels.challengeExtraction();
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(r, model,
                TrigramExtractorTestModels.challengeData(1));
        // measured: 221 extracted, all of them dataset trigrams; recall 221/277 = 0.798 against the dataset,
        // 221/266 = 0.831 against the model's argmax (the other 45 are argmax with P(c) ~0.02 only), and 221/221
        // against the trigrams it predicts with P(c) above the cut
        assertThat(r.trigrams()).hasSize(221);
        assertThat(ev.vsDataset().precision()).isGreaterThan(0.98);
        assertThat(ev.vsDataset().recall()).isGreaterThan(0.75);
        assertThat(ev.vsModel().precision()).isGreaterThan(0.98);
        assertThat(ev.vsModel().recall()).isGreaterThan(0.8);
        assertThat(ev.vsModelConfident().precision()).isGreaterThan(0.98);
        assertThat(ev.vsModelConfident().recall()).isGreaterThan(0.95);
        assertThat(ev.vsModel().nReference()).isEqualTo(
                Metrics.trigramScore(model, TrigramExtractorTestModels.challengeData(1)).nCorrect());
        assertThat(ev.nPredictedUnconfident()).isEqualTo(ev.vsModel().nReference() - ev.vsModelConfident().nReference());
        // the confidences are bimodal: the label-free cut sits in a wide gap (measured 0.030 to 0.934)
        assertThat(r.cut().rule()).isEqualTo(ConfidenceCut.RULE_WIDEST_GAP);
        assertThat(r.cut().gapLow()).isBetween(0.02, 0.1);
        assertThat(r.cut().gapHigh()).isBetween(0.9, 0.95);
        assertThat(r.cut().gapLow()).isEqualTo(r.maxRejectedConfidence());
        assertThat(r.cut().gapHigh()).isEqualTo(r.minExtractedConfidence());
        assertThat(r.threshold()).isEqualTo((r.cut().gapLow() + r.cut().gapHigh()) / 2);
        assertThat(r.options().threshold()).isNull();
        // the explanation of each entry: b attends a (measured in a random context: 0.83 on average, at least 0.43),
        // and without the copy of a, c is no more likely than any token; with all attention on a, c wins for all but
        // 3 entries (measured), which need the mix of a's and b's values
        double meanAttn = 0;
        int needMix = 0;
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.attnPrev()[0]).as("attention of %s", e.explanation()).isGreaterThan(0.35);
            assertThat(e.confidenceNoAttnPrev()).isLessThan(0.1);
            needMix += e.confidenceFullAttnPrev() < 0.5 ? 1 : 0;
            meanAttn += e.attnPrev()[0] / r.trigrams().size();
        }
        assertThat(meanAttn).isGreaterThan(0.75);
        assertThat(needMix).isLessThanOrEqualTo(6);
        assertWellFormed(r);
        // the two readings of the softmax agree on this model
        TrigramExtractor.Result twoKey = TrigramExtractor.extract(TrigramExtractorTestModels.challenge(),
                TrigramExtractor.Options.defaults().withBackground(TrigramExtractor.Background.TWO_KEY)
                        .withPositions(1, 25, 48));
        assertThat(asSet(twoKey.triples())).isEqualTo(asSet(r.triples()));
    }

    @Test
    void challengeModelsArgmaxCorrectTrigramsAreExtractedOrBigramDefaults() {
        TrigramExtractor.Result r = TrigramExtractorTestModels.challengeExtraction();
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        TrigramDataset data = TrigramExtractorTestModels.challengeData(1);
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(r, model, data);
        // measured: 266 argmax-correct, 221 of them depend on a, and those are exactly the 221 extracted; of the 45
        // argmax-correct but not extracted, 38 have their (b, c) among the 38 bigram defaults
        assertThat(ev.nArgmaxCorrect()).isEqualTo(266);
        assertThat(ev.nADependent()).isEqualTo(221);
        assertThat(ev.recallVsADependent()).isEqualTo(1.0);
        assertThat(ev.recallVsArgmaxCorrect()).isCloseTo(221 / 266.0, within(1e-12));
        assertThat(ev.nArgmaxCorrectNotExtracted()).isEqualTo(45);
        assertThat(ev.nNotExtractedBigramDefaults()).isEqualTo(38);
        int argmaxCorrect = 0;
        for (ExtractionScore.DatasetTrigram t : ev.datasetTrigrams()) {
            if (t.argmaxCorrect()) {
                argmaxCorrect++;
                assertThat(t.extracted()).as("%s", t).isEqualTo(t.aDependent());
            }
        }
        assertThat(argmaxCorrect).isEqualTo(266);
        // the bigram defaults: 38 (b, c), every one a dataset (b, c) pair, out of the dataset's 275 distinct ones
        ExtractionScore.PairAgreement bd = ev.bigramDefaultsVsDataset();
        assertThat(r.bigramDefaults()).hasSize(38);
        assertThat(bd.nReference()).isEqualTo(275);
        assertThat(bd.precision()).isEqualTo(1.0);
        assertThat(bd.recall()).isCloseTo(38 / 275.0, within(1e-12));
        // their bump is 1.3 to 2 times uniform (measured 1.33x to 1.95x), which is what wins the argmax
        for (TrigramExtractor.BigramDefault d : r.bigramDefaults()) {
            assertThat(d.confidence() * 75).as("%s", d).isBetween(1.3, 2.0);
        }
        assertThat(r.bigramCut().rule()).isEqualTo(ConfidenceCut.RULE_OTSU_LOG);
        assertBigramDefaultsWellFormed(r);

        // the a-dependence test, recomputed with one forward per sequence
        int checked = 0;
        for (int i = 0; i < data.nTrigrams(); i += 23) {
            ExtractionScore.DatasetTrigram t = ev.datasetTrigrams().get(i);
            List<Double> others = new ArrayList<>();
            for (int a = 0; a < 75; a++) {
                Tensor logits = model.forward(new int[] {a, t.b(), t.c()}, 1, 3);
                double p = Math.exp(Logits.logProb(logits.data(), 75, 75, t.c()));
                if (a == t.a()) {
                    assertThat(p).isCloseTo(t.probC(), within(1e-5));
                } else {
                    others.add(p);
                }
            }
            others.sort(null);
            double median = (others.get(36) + others.get(37)) / 2;
            assertThat(t.medianOtherA()).as("%s", t).isCloseTo(median, within(1e-6));
            assertThat(t.aDependent()).isEqualTo(t.probC() > 2 * median);
            checked++;
        }
        assertThat(checked).isEqualTo(13);
    }

    @Test
    void extractingTheTriplesAloneReadsTheSameTableAsExtract() {
        // a trained model and an untrained one (nothing or little above its cut)
        Trainer t = TrigramExtractorTestModels.tiny();
        Weights random = Weights.init(t.weights().cfg, 3);
        for (Weights w : List.of(t.weights(), random)) {
            TrigramExtractor.Result full = TrigramExtractor.extract(w);
            TrigramExtractor.Triples table = TrigramExtractor.extractTriples(w);
            assertThat(table.cut()).isEqualTo(full.cut());
            assertThat(table.triples()).hasSameSizeAs(full.trigrams());
            assertThat(table.triples()).map(Arrays::toString)
                    .containsExactlyInAnyOrderElementsOf(Arrays.stream(full.triples()).map(Arrays::toString).toList());
            assertThat(table.prefixTable()).containsExactly(full.prefixTable());
            int V = table.dVocab();
            for (int i = 1; i < table.triples().size(); i++) {
                int[] prev = table.triples().get(i - 1), cur = table.triples().get(i);
                assertThat(full.pairs().confidence()[prev[0] * V + prev[1]])
                        .isGreaterThanOrEqualTo(full.pairs().confidence()[cur[0] * V + cur[1]]);
            }
        }
        assertThat(TrigramExtractor.extractTriples(t.weights()).triples()).isNotEmpty();
    }

    @Test
    void theCutMovesWithTheModel() {
        // the tiny model's confidences have their widest gap elsewhere: measured 0.480 to 0.713, cut at 0.597
        Trainer t = TrigramExtractorTestModels.tiny();
        TrigramExtractor.Result r = TrigramExtractor.extract(t.weights());
        assertThat(r.cut().gapLow()).isBetween(0.45, 0.5);
        assertThat(r.cut().gapHigh()).isBetween(0.68, 0.75);
        assertIsWidestGap(r);
        assertWellFormed(r);
        assertBigramDefaultsWellFormed(r);

        // trained for 4 epochs instead of 15, no pair reaches 0.5: a fixed 0.5 finds nothing, the cut moves down
        // (measured: gap 0.201 to 0.235) and keeps 2 pairs, both dataset trigrams
        TrainConfig c = TrigramExtractorTestModels.TINY;
        Trainer early = Trainer.start(new TrainConfig(c.dVocab(), c.seqLen(), c.trigramProb(), c.dataSeed(), c.nTrain(),
                c.nVal(), 4, c.batchSize(), c.lrStart(), c.lrEnd(), c.weightDecay(), c.dModel(), c.nHeads(), c.dHead(),
                c.dMlp(), c.nLayers(), c.layerNorm(), c.initSeed()), tmp);
        early.run(new Trainer.Listener() {
        });
        TrigramExtractor.Result fixed = TrigramExtractor.extract(early.weights(),
                TrigramExtractor.Options.defaults().withThreshold(0.5));
        assertThat(fixed.trigrams()).isEmpty();
        assertThat(fixed.cut().rule()).isEqualTo(ConfidenceCut.RULE_THRESHOLD);
        assertThat(fixed.cut().gapHigh()).isNaN();
        assertThat(fixed.cut().gapLow()).isEqualTo(fixed.maxRejectedConfidence());
        TrigramExtractor.Result moved = TrigramExtractor.extract(early.weights());
        assertThat(moved.threshold()).isBetween(0.15, 0.3);
        assertThat(moved.trigrams()).hasSize(2);
        assertIsWidestGap(moved);
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(moved, new HookedTransformer(early.weights()),
                early.dataset());
        assertThat(ev.vsDataset().precision()).isEqualTo(1.0);
        assertWellFormed(moved);
        assertBigramDefaultsWellFormed(moved);
    }

    @Test
    void theMedianOfAnEvenCountIsTheMeanOfTheMiddleTwo() {
        assertThat(TrigramExtractor.median(new double[] {3, 1, 2}, 3)).isEqualTo(2);
        assertThat(TrigramExtractor.median(new double[] {4, 1, 3, 2, 99}, 4)).isEqualTo(2.5);
        assertThat(TrigramExtractor.median(new double[] {Double.NaN}, 0)).isNaN();
        // selection gives the sort's median exactly, ties and repeated values included; NaN sorts last as before
        Random rng = new Random(9);
        for (int trial = 0; trial < 500; trial++) {
            int n = 1 + rng.nextInt(80);
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = trial % 3 == 0 ? rng.nextInt(4) : rng.nextGaussian();
            }
            if (trial % 50 == 7) {
                v[rng.nextInt(n)] = Double.NaN;
            }
            double[] sorted = v.clone();
            Arrays.sort(sorted);
            double expected = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
            assertThat(TrigramExtractor.medianInPlace(v.clone(), n)).as("trial %d", trial).isEqualTo(expected);
        }
    }

    @Test
    void uniformAndNaNModelsExtractNothing() {
        ModelConfig cfg = new ModelConfig(10, 8, 16, 1, 1, 8, 12, false);
        Weights zero = Weights.init(cfg, 1);
        Arrays.fill(zero.data, 0f);
        Weights nan = Weights.init(cfg, 1);
        Arrays.fill(nan.data, Float.NaN);
        for (Weights w : List.of(zero, nan)) {
            TrigramExtractor.Result r = TrigramExtractor.extract(w);
            assertThat(r.trigrams()).isEmpty();
            assertThat(r.bigramDefaults()).isEmpty();
            assertThat(r.cut().gapHigh()).isNaN();
            assertThat(r.bigramCut().gapHigh()).isNaN();
            assertThat(r.threshold()).isCloseTo(0.1, within(1e-6));
            assertThat(TrigramExtractor.summaryLines(r, null).get(0)).contains("none above 1/d_vocab");
        }
    }

    @Test
    void componentsReproduceTheModelOnTheTwoTokenContext() {
        List<Weights> models = new ArrayList<>();
        models.add(Weights.init(new ModelConfig(11, 9, 16, 1, 2, 8, 12, true), 3));  // LN, 2 heads
        models.add(Weights.init(new ModelConfig(11, 9, 16, 1, 3, 4, 0, false), 4)); // attention-only, 3 heads
        models.add(TrigramExtractorTestModels.tiny().weights().copy());
        for (Weights w : models) {
            randomizeBiases(w, 5);
            HookedTransformer model = new HookedTransformer(w);
            int V = w.cfg.dVocab(), T = w.cfg.nCtx();
            Random rng = new Random(1);
            for (int trial = 0; trial < 6; trial++) {
                int a = rng.nextInt(V), b = rng.nextInt(V), p = 1 + rng.nextInt(T - 1);
                // the model on a sequence whose query p sees only p-1 and p: mask every earlier key's score
                int[] tokens = new int[p + 1];
                for (int i = 0; i < p - 1; i++) {
                    tokens[i] = rng.nextInt(V);
                }
                tokens[p - 1] = a;
                tokens[p] = b;
                Hook.At mask = Hook.at("blocks.0.attn.hook_attn_scores", (t, name) -> {
                    int H = t.dim(1), L = t.dim(2);
                    for (int h = 0; h < H; h++) {
                        for (int k = 0; k < p - 1; k++) {
                            t.data()[(h * L + p) * L + k] = Float.NEGATIVE_INFINITY;
                        }
                    }
                });
                Tensor logits = model.runWithHooks(tokens, 1, p + 1, List.of(mask));
                double[] probs = TrigramExtractor.distribution(w, a, b, p, TrigramExtractor.Background.TWO_KEY);
                for (int c = 0; c < V; c++) {
                    assertThat(probs[c]).as("%s a=%d b=%d p=%d c=%d", w.cfg, a, b, p, c)
                            .isCloseTo(Math.exp(Logits.logProb(logits.data(), p * V, V, c)), within(1e-5));
                }
            }
            // random_context at p = 1 has no background: the same as two_key
            assertThat(TrigramExtractor.distribution(w, 2, 3, 1, TrigramExtractor.Background.RANDOM_CONTEXT))
                    .containsExactly(TrigramExtractor.distribution(w, 2, 3, 1, TrigramExtractor.Background.TWO_KEY),
                            within(1e-12));
        }
    }

    /**
     * A model without LayerNorm is read through its linear tables (ExtractComponents's shortcuts): the same table,
     * confidences, distributions and explanations as the direct route, to rounding, with biases that count, one head
     * or three, with and without an MLP, and on the background and two-key readings.
     */
    @Test
    void theShortcutsOfAModelWithoutLayerNormGiveTheDirectNumbers() {
        List<Weights> models = new ArrayList<>();
        models.add(TrigramExtractorTestModels.tiny().weights().copy());
        models.add(Weights.init(new ModelConfig(11, 9, 16, 1, 3, 4, 0, false), 4));
        models.add(Weights.init(new ModelConfig(9, 7, 12, 1, 2, 6, 10, false), 6));
        for (Weights w : models) {
            randomizeBiases(w, 5);
            for (TrigramExtractor.Options opts : List.of(TrigramExtractor.Options.defaults().withThreshold(0.2),
                    TrigramExtractor.Options.defaults().withBackground(TrigramExtractor.Background.TWO_KEY))) {
                TrigramExtractor.Result fast = TrigramExtractor.extract(w, opts, true);
                TrigramExtractor.Result direct = TrigramExtractor.extract(w, opts, false);
                String what = w.cfg + " " + opts.background();
                assertThat(fast.pairs().argmax()).as(what).containsExactly(direct.pairs().argmax());
                // stored as floats: rounding may differ in the last place
                assertThat(floats(fast.pairs().distribution())).as(what)
                        .containsExactly(floats(direct.pairs().distribution()), within(1e-6));
                assertThat(floats(fast.pairs().medianOverA())).as(what)
                        .containsExactly(floats(direct.pairs().medianOverA()), within(1e-6));
                assertThat(fast.trigrams()).as(what).hasSameSizeAs(direct.trigrams());
                for (int i = 0; i < fast.trigrams().size(); i++) {
                    TrigramExtractor.Entry f = fast.trigrams().get(i), d = direct.trigrams().get(i);
                    assertThat(new int[] {f.a(), f.b(), f.c(), f.runnerUp()}).as(what)
                            .containsExactly(d.a(), d.b(), d.c(), d.runnerUp());
                    assertThat(new double[] {f.confidence(), f.confidenceMin(), f.confidenceNoAttnPrev(),
                            f.confidenceFullAttnPrev(), f.logitMargin()}).as(what + " " + f.explanation())
                            .containsExactly(new double[] {d.confidence(), d.confidenceMin(), d.confidenceNoAttnPrev(),
                                    d.confidenceFullAttnPrev(), d.logitMargin()}, within(1e-9));
                    assertThat(f.attnPrev()).containsExactly(d.attnPrev(), within(1e-12));
                    assertThat(f.marginContributions()).containsExactly(d.marginContributions(), within(1e-9));
                }
                assertThat(fast.bigramDefaults()).as(what).hasSameSizeAs(direct.bigramDefaults());
                for (int i = 0; i < fast.bigramDefaults().size(); i++) {
                    TrigramExtractor.BigramDefault f = fast.bigramDefaults().get(i), d = direct.bigramDefaults().get(i);
                    assertThat(new int[] {f.b(), f.c()}).as(what).containsExactly(d.b(), d.c());
                    assertThat(f.confidence()).as(what).isCloseTo(d.confidence(), within(1e-6));
                }
            }
        }
        // the tiny trained model's table has entries to compare
        assertThat(TrigramExtractor.extract(models.get(0), TrigramExtractor.Options.defaults().withThreshold(0.2),
                true).trigrams()).isNotEmpty();
    }

    private static double[] floats(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    @Test
    void findsTheTrigramsOfAFreshlyTrainedTinyModel() {
        Trainer t = TrigramExtractorTestModels.tiny();
        TrigramExtractor.Result r = TrigramExtractor.extract(t.weights());
        ExtractionScore.Evaluation ev = ExtractionScore.evaluate(r, new HookedTransformer(t.weights()), t.dataset());
        // measured: 20 extracted, all right (recall 0.83); the model gets all 24 by argmax, 20 of them with P(c) > 0.5
        assertThat(ev.vsDataset().precision()).isGreaterThan(0.95);
        assertThat(ev.vsDataset().recall()).isGreaterThan(0.7);
        assertThat(ev.vsModelConfident().recall()).isGreaterThan(0.9);
        assertWellFormed(r);
    }

    @Test
    void attentionOnlyAndLayerNormMultiHeadModelsGiveWellFormedResults() throws Exception {
        for (ModelConfig cfg : List.of(new ModelConfig(10, 8, 16, 1, 1, 8, 0, false),
                new ModelConfig(10, 8, 16, 1, 2, 8, 12, true), new ModelConfig(10, 3, 8, 1, 4, 2, 0, true))) {
            Weights w = Weights.init(cfg, 7);
            randomizeBiases(w, 8);
            // a threshold below 1/d_vocab extracts every pair, so every entry is explained
            TrigramExtractor.Result r = TrigramExtractor.extract(w, TrigramExtractor.Options.defaults()
                    .withThreshold(0.01));
            assertThat(r.trigrams()).as(cfg.toString()).hasSize(100);
            assertWellFormed(r);
            for (TrigramExtractor.Entry e : r.trigrams()) {
                assertThat(e.attnPrev()).hasSize(cfg.nHeads());
                assertThat(e.qkAdvantage()).hasSize(cfg.nHeads());
            }
            TrigramDataset ds = TrigramDataset.generate(10, cfg.nCtx(), 0.1, 3, 1);
            ExtractionScore.Evaluation ev = ExtractionScore.evaluate(r, new HookedTransformer(w), ds);
            assertThat(ev.vsDataset().nExtracted()).isEqualTo(100);
            assertThat(ev.vsDataset().nReference()).isEqualTo(ds.nTrigrams());
            JsonNode json = new ObjectMapper().valueToTree(r.toJson(3));
            assertThat(json.get("trigrams")).hasSize(3);
            assertThat(json.get("n_extracted").intValue()).isEqualTo(100);
        }
    }

    @Test
    void refusesWhatItCannotRead() {
        Weights twoLayers = Weights.init(new ModelConfig(10, 8, 16, 2, 1, 8, 12, false), 1);
        assertThatThrownBy(() -> TrigramExtractor.extract(twoLayers)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("n_layers=2");
        Weights w = Weights.init(new ModelConfig(10, 8, 16, 1, 1, 8, 12, false), 1);
        assertThatThrownBy(() -> TrigramExtractor.extract(w, TrigramExtractor.Options.defaults().withPositions(8)))
                .isInstanceOf(TrilensException.class).hasMessage("query position 8 is outside [1, 7]: b at p needs "
                        + "a at p-1 inside the model's context of 8");
        assertThatThrownBy(() -> TrigramExtractor.Options.defaults().withThreshold(1))
                .isInstanceOf(TrilensException.class).hasMessageContaining("threshold must be > 0 and < 1");
        assertThat(TrigramExtractor.defaultPositions(50)).hasSize(16).startsWith(1).endsWith(48);
        assertThat(TrigramExtractor.defaultPositions(3)).containsExactly(1);
        assertThat(TrigramExtractor.defaultPositions(10)).containsExactly(1, 2, 3, 4, 5, 6, 7, 8);
    }

    static void assertWellFormed(TrigramExtractor.Result r) {
        int V = r.pairs().dVocab();
        assertThat(r.pairs().argmax()).hasSize(V * V);
        assertThat(r.pairs().confidence()).hasSize(V * V);
        double prev = Double.POSITIVE_INFINITY;
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.confidence()).isGreaterThan(r.threshold()).isLessThanOrEqualTo(prev + 1e-12);
            prev = e.confidence();
            assertThat(r.completionOf(e.a(), e.b())).isEqualTo(e.c());
            assertThat(e.confidence()).isCloseTo(r.pairs().confidence()[r.pairs().idx(e.a(), e.b())], within(1e-5));
            assertThat(e.runnerUp()).isNotEqualTo(e.c());
            double sum = 0;
            for (double c : e.marginContributions()) {
                assertThat(c).isFinite();
                sum += c;
            }
            // the direct contributions add up to the margin exactly (up to float rounding of the weights)
            assertThat(sum).as("contributions of %s", e.explanation()).isCloseTo(e.logitMargin(), within(1e-6));
            assertThat(TrigramExtractor.CONTRIBUTIONS).contains(e.decidedBy());
            assertThat(e.explanation()).startsWith("QK: b attends a with ");
            for (double x : e.attnPrev()) {
                assertThat(x).isBetween(0.0, 1.0);
            }
        }
    }

    /** The cut is the middle of the widest gap of the pair confidences above 1/d_vocab (with 1/d_vocab as a point). */
    static void assertIsWidestGap(TrigramExtractor.Result r) {
        int V = r.pairs().dVocab();
        List<Double> v = new ArrayList<>();
        v.add(1.0 / V);
        for (float x : r.pairs().confidence()) {
            if (x > 1.0 / V * (1 + 1e-6)) {
                v.add((double) x);
            }
        }
        v.sort(null);
        double widest = 0;
        for (int i = 0; i + 1 < v.size(); i++) {
            widest = Math.max(widest, v.get(i + 1) - v.get(i));
        }
        assertThat(r.cut().gapWidth()).isEqualTo(widest);
        assertThat(v).contains(r.cut().gapLow(), r.cut().gapHigh());
        assertThat(r.cut().value()).isEqualTo((r.cut().gapLow() + r.cut().gapHigh()) / 2);
    }

    /** Each b's median over a' is recomputed from the pair distributions; its argmax is a default iff above the cut. */
    static void assertBigramDefaultsWellFormed(TrigramExtractor.Result r) {
        TrigramExtractor.PairTables pt = r.pairs();
        int V = pt.dVocab();
        int listed = 0;
        for (int b = 0; b < V; b++) {
            int best = 0;
            for (int c = 0; c < V; c++) {
                double[] overA = new double[V];
                for (int a = 0; a < V; a++) {
                    overA[a] = pt.probability(a, b, c);
                }
                Arrays.sort(overA);
                double median = V % 2 == 1 ? overA[V / 2] : (overA[V / 2 - 1] + overA[V / 2]) / 2;
                assertThat(pt.median(b, c)).isCloseTo(median, within(1e-7));
                best = pt.median(b, c) > pt.median(b, best) ? c : best;
            }
            boolean kept = pt.median(b, best) > r.bigramCut().value();
            assertThat(r.bigramDefaultOf(b)).as("b=%d", b).isEqualTo(kept ? best : -1);
            listed += kept ? 1 : 0;
        }
        assertThat(r.bigramDefaults()).hasSize(listed);
        for (TrigramExtractor.BigramDefault d : r.bigramDefaults()) {
            assertThat(d.confidence()).isEqualTo(pt.median(d.b(), d.c()));
        }
    }

    static java.util.Set<List<Integer>> asSet(int[][] triples) {
        java.util.Set<List<Integer>> out = new java.util.HashSet<>();
        for (int[] t : triples) {
            out.add(List.of(t[0], t[1], t[2]));
        }
        return out;
    }

    /** Weights.init leaves biases at zero; make them count. */
    static void randomizeBiases(Weights w, long seed) {
        Random rng = new Random(seed);
        for (var p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (leaf.startsWith("b") || leaf.equals("w")) {
                for (int i = 0; i < p.size(); i++) {
                    w.data[p.offset() + i] += (float) (rng.nextGaussian() * 0.3);
                }
            }
        }
    }
}
