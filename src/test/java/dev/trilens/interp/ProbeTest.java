package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class ProbeTest {

    /** The challenge model's probe, built by the first test that needs it and kept for this class's run only. */
    private static Probe challenge;

    private static synchronized Probe challenge() {
        if (challenge == null) {
            Weights w = TrigramExtractorTestModels.challenge();
            challenge = new Probe(new HookedTransformer(w), TrigramExtractorTestModels.challengeExtraction(),
                    TrigramExtractorTestModels.challengeData(200));
        }
        return challenge;
    }

    /** PIT runs this class once per mutant in one JVM: a probe built with one mutant in place must not outlive it. */
    @AfterAll
    static void forgetTheChallengeProbe() {
        challenge = null;
    }

    /** A learned trigram of the challenge model, embedded in the first tokens of sequence 0. */
    private static int[] withTrigram(Probe p, int at) {
        TrigramExtractor.Entry e = p.rules().trigrams().get(0);
        int[] t = TrigramExtractorTestModels.challengeData(1).tokensOf(0, 1);
        t[at - 1] = e.a();
        t[at] = e.b();
        t[at + 1] = e.c();
        return t;
    }

    @Test
    void badSequencesNameTheOffendingItem() {
        ModelConfig cfg = ModelConfig.arena();
        assertThat(Probe.parseTokens("[1, 2,3\n 4]", cfg)).containsExactly(1, 2, 3, 4);
        assertThatThrownBy(() -> Probe.parseTokens("1 2 x7 4", cfg)).isInstanceOf(TrilensException.class)
                .hasMessage("token 3 of the sequence, 'x7', is not a whole number; expected token ids 0..74");
        assertThatThrownBy(() -> Probe.parseTokens("1 99999999999", cfg))
                .hasMessage("token 2 of the sequence, '99999999999', is outside the vocabulary; expected token ids "
                        + "0..74");
        assertThatThrownBy(() -> Probe.parseTokens("1 75", cfg))
                .hasMessage("token 75 at position 1 is outside the vocabulary 0..74");
        assertThatThrownBy(() -> Probe.parseTokens("1 -3", cfg))
                .hasMessage("token -3 at position 1 is outside the vocabulary 0..74");
        assertThatThrownBy(() -> Probe.parseTokens(" , ", cfg))
                .hasMessage("the token sequence is empty; expected 1..50 token ids");
        int[] long51 = new int[51];
        assertThatThrownBy(() -> Probe.checkTokens(long51, cfg))
                .hasMessage("the token sequence has 51 tokens, more than the model's n_ctx of 50");
    }

    @Test
    void predictsTheLearnedCompletionWhereTheRuleFires() {
        Probe p = challenge();
        int[] t = withTrigram(p, 10);
        TrigramExtractor.Entry e = p.rules().trigrams().get(0);
        Probe.Prediction r = p.predict(t, 3);
        assertThat(r.positions()).hasSize(50);
        Probe.Position at = r.positions().get(10);
        assertThat(at.rule()).isEqualTo(new Probe.Rule(e.a(), e.b(), e.c()));
        assertThat(at.top().get(0).token()).isEqualTo(e.c());
        assertThat(at.top().get(0).prob()).isGreaterThan(0.5);
        assertThat(at.nextToken()).isEqualTo(e.c());
        assertThat(at.nextProb()).isEqualTo(at.top().get(0).prob());
        assertThat(at.prevAttention()).isGreaterThan(0.5f);
        assertThat(at.attention().get(0).topKeys().get(0).pos()).isEqualTo(9);
        assertThat(at.attention().get(0).row()).hasSize(11);
        double sum = 0;
        for (float w : at.attention().get(0).row()) {
            sum += w;
        }
        assertThat(sum).isCloseTo(1.0, within(1e-5));
        assertThat(at.top()).hasSize(3);
        assertThat(at.top().get(0).prob()).isGreaterThanOrEqualTo(at.top().get(1).prob());
        // the rule's verdict at every position is the extracted table's
        for (Probe.Position q : r.positions()) {
            int c = q.pos() == 0 ? -1 : p.rules().completionOf(t[q.pos() - 1], t[q.pos()]);
            assertThat(q.rule() == null ? -1 : q.rule().c()).as("position %d", q.pos()).isEqualTo(c);
        }
        assertThat(r.positions().get(0).prevAttention()).isNull();
        assertThat(r.positions().get(49).nextToken()).isNull();
    }

    @Test
    void attributionOfThePredictedTokenSumsToItsLogitDifference() {
        Probe p = challenge();
        int[] t = withTrigram(p, 10);
        Probe.Dla d = p.dla(t, 10);
        assertThat(d.token()).isEqualTo(p.rules().trigrams().get(0).c());
        double sum = d.components().stream().mapToDouble(Probe.Contribution::value).sum();
        assertThat(sum).isCloseTo(d.total(), within(1e-3));
        assertThat(d.components()).extracting(Probe.Contribution::name).contains("L0H0", "L0.mlp_out", "embed");
        // a shorter sequence attributes the same prediction identically (causal attention)
        Probe.Dla shorter = p.dla(Arrays.copyOf(t, 11), 10);
        assertThat(shorter.total()).isCloseTo(d.total(), within(1e-4));
        // the last position of the context predicts past it: attributed against the token it predicts
        Probe.Dla last = p.dla(t, 49);
        assertThat(last.token()).isEqualTo(p.predict(t, 1).positions().get(49).top().get(0).token());
        assertThat(last.components().stream().mapToDouble(Probe.Contribution::value).sum())
                .isCloseTo(last.total(), within(1e-3));
        assertThatThrownBy(() -> p.dla(t, 50)).hasMessageContaining("position 50 is outside the sequence");
    }

    @Test
    void patchIsTheChallengeExperiment() {
        Probe p = challenge();
        int[] seq0 = TrigramExtractorTestModels.challengeData(2500).tokensOf(0, 1);
        Patching.SwapResult r = p.patch(seq0, 21, 15, -1, -1);
        assertThat(r.before().token()).isEqualTo(62);
        assertThat(r.after().token()).isEqualTo(38);
    }

    @Test
    void interventionsShowBeforeAndAfter() {
        Probe p = challenge();
        int[] t = withTrigram(p, 10);
        int c = p.rules().trigrams().get(0).c();
        Probe.Effect zero = p.ablate(t, "L0H0", Ablation.Mode.ZERO);
        assertThat(zero.positions().get(10).before().token()).isEqualTo(c);
        assertThat(zero.positions().get(10).after().prob()).isLessThan(zero.positions().get(10).before().prob());
        assertThat(zero.changed()).contains(10);
        Probe.Effect mean = p.ablate(t, "L0.mlp_out", Ablation.Mode.MEAN);
        assertThat(mean.changed()).contains(10);
        assertThat(mean.intervention()).contains("mean-ablating L0.mlp_out");
        assertThatThrownBy(() -> p.ablate(t, "L3H0", Ablation.Mode.ZERO))
                .hasMessageStartingWith("unknown ablation target 'L3H0'; expected one of [L0H0, L0.mlp_out");
        Probe.Effect forced = p.forceRule(t);
        assertThat(forced.positions().get(10).after().token()).isEqualTo(c);
        assertThat(forced.summary()).contains("the rule fires at");
        // removing the previous-token attention where no rule fires moves some prediction somewhere
        assertThat(forced.positions()).hasSize(50);
    }

    @Test
    void aModelComparedWithItselfAgreesEverywhere() {
        Probe p = challenge();
        ModelDiff d = ModelDiff.of(p, p);
        assertThat(d.onlyA()).isEmpty();
        assertThat(d.onlyB()).isEmpty();
        assertThat(d.nBoth()).isEqualTo(p.rules().trigrams().size()).isPositive();
        assertThat(d.correlations()).isNotEmpty();
        for (ModelDiff.ParamCorrelation c : d.correlations()) {
            if (c.correlation() != null) {
                assertThat(c.correlation()).as(c.name()).isCloseTo(1.0, within(1e-9));
            }
        }
        assertThat(d.correlations()).extracting(ModelDiff.ParamCorrelation::name).contains("embed.W_E");
    }

    @Test
    void differentModelsDifferInTableAndWeights() {
        ModelConfig cfg = new ModelConfig(12, 8, 16, 1, 1, 8, 8, false);
        Weights w1 = Weights.init(cfg, 1), w2 = Weights.init(cfg, 2);
        TrigramDataset data = TrigramDataset.generate(12, 8, 0.1, 3, 20);
        Probe a = Probe.of(w1, data), b = Probe.of(w2, data);
        ModelDiff d = ModelDiff.of(a, b);
        assertThat(d.sameShape()).isTrue();
        ParamCheck.assertSomeBelow(d.correlations(), 0.5);
        Probe c = Probe.of(Weights.init(cfg.withDMlp(0), 1), data);
        ModelDiff e = ModelDiff.of(a, c);
        assertThat(e.sameShape()).isFalse();
        assertThat(e.correlations()).isEmpty();
        assertThat(e.summary()).contains("different shapes");
        assertThat(a.ablate(data.tokensOf(0, 1), "L0H0", Ablation.Mode.MEAN).positions()).hasSize(8);
    }

    private static final class ParamCheck {
        static void assertSomeBelow(List<ModelDiff.ParamCorrelation> cs, double limit) {
            assertThat(cs).isNotEmpty();
            assertThat(cs).anySatisfy(c -> assertThat(c.correlation()).isNotNull().isLessThan(limit));
        }
    }
}
