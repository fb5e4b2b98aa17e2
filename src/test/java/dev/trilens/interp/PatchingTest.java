package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

class PatchingTest {

    private static final ModelConfig CFG = new ModelConfig(13, 8, 12, 2, 3, 4, 10, true);
    private static final int B = 3, T = 8;

    private static int[] tokens(long seed) {
        Random r = new Random(seed);
        int[] t = new int[B * T];
        for (int i = 0; i < t.length; i++) {
            t[i] = r.nextInt(CFG.dVocab());
        }
        return t;
    }

    private final HookedTransformer model = new HookedTransformer(AttributionTest.randomWeights(CFG, 11));
    private final int[] clean = tokens(1), corrupted = tokens(2);

    private static float at(Tensor logits, int b, int t, int v) {
        return logits.get(b, t, v);
    }

    @Test
    void patchingTheCleanRunIntoItselfChangesNothing() {
        List<Patching.Patch> all = new ArrayList<>();
        for (String h : model.hookNames()) {
            all.add(Patching.Patch.all(h));
        }
        Tensor patched = Patching.patch(model, clean, clean, B, T, all);
        assertThat(patched.data()).containsExactly(model.forward(clean, B, T).data(), Offset.offset(1e-5f));
    }

    @Test
    void patchingEverythingFromTheCorruptedRunReproducesIt() {
        float[] want = model.forward(corrupted, B, T).data();
        Tensor inputs = Patching.patch(model, clean, corrupted, B, T,
                List.of(Patching.Patch.all("hook_embed"), Patching.Patch.all("hook_pos_embed")));
        assertThat(inputs.data()).containsExactly(want, Offset.offset(1e-5f));
        List<Patching.Patch> all = new ArrayList<>();
        for (String h : model.hookNames()) {
            all.add(Patching.Patch.all(h));
        }
        assertThat(Patching.patch(model, clean, corrupted, B, T, all).data()).containsExactly(want,
                Offset.offset(1e-5f));
        Tensor last = Patching.patch(model, clean, corrupted, B, T, List.of(Patching.Patch.all(
                "blocks.1.hook_resid_post")));
        assertThat(last.data()).containsExactly(want, Offset.offset(1e-5f));
    }

    @Test
    void aPositionPatchOnlyReachesThatPositionAndLater() {
        float[] base = model.forward(clean, B, T).data();
        for (String hook : List.of("blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern")) {
            Tensor p = Patching.patch(model, clean, corrupted, B, T, List.of(Patching.Patch.at(hook, 4)));
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < T; t++) {
                    double diff = 0;
                    for (int v = 0; v < CFG.dVocab(); v++) {
                        diff = Math.max(diff, Math.abs(at(p, b, t, v) - base[(b * T + t) * CFG.dVocab() + v]));
                    }
                    if (t < 4) {
                        assertThat(diff).as("%s b=%d t=%d", hook, b, t).isLessThan(1e-5);
                    } else if (t == 4) {
                        assertThat(diff).as("%s b=%d t=%d", hook, b, t).isGreaterThan(1e-3);
                    }
                }
            }
        }
    }

    @Test
    void patchingEachHeadIsPatchingTheWholeActivation() {
        for (String hook : List.of("blocks.0.attn.hook_z", "blocks.1.attn.hook_result", "blocks.0.attn.hook_pattern",
                "blocks.1.attn.hook_q")) {
            List<Patching.Patch> perHead = new ArrayList<>();
            for (int h = 0; h < CFG.nHeads(); h++) {
                perHead.add(Patching.Patch.all(hook).withHead(h));
            }
            float[] whole = Patching.patch(model, clean, corrupted, B, T, List.of(Patching.Patch.all(hook))).data();
            assertThat(Patching.patch(model, clean, corrupted, B, T, perHead).data()).as(hook).containsExactly(whole);
            float[] one = Patching.patch(model, clean, corrupted, B, T, perHead.subList(0, 1)).data();
            assertThat(one).as(hook).isNotEqualTo(whole);
        }
    }

    @Test
    void sweepPatchesOnePositionAndHeadAtATime() {
        double[][] z = Patching.sweep(model, clean, corrupted, B, T, "blocks.0.attn.hook_z", l -> l.get(0, T - 1, 0));
        assertThat(z).hasDimensions(T, CFG.nHeads());
        double direct = Patching.patchMetric(model, clean, corrupted, B, T,
                List.of(Patching.Patch.at("blocks.0.attn.hook_z", 5).withHead(2)), l -> l.get(0, T - 1, 0));
        assertThat(z[5][2]).isEqualTo(direct);
        assertThat(Patching.sweep(model, clean, corrupted, B, T, "blocks.1.hook_resid_pre", l -> l.get(0, 0, 0)))
                .hasDimensions(T, 1);
    }

    @Test
    void badPatchesAreOneLineErrors() {
        assertThatThrownBy(() -> Patching.patch(model, clean, corrupted, B, T,
                List.of(Patching.Patch.all("blocks.0.hook_resid_pre").withHead(0))))
                .isInstanceOf(TrilensException.class).hasMessageContaining("has no head axis");
        assertThatThrownBy(() -> Patching.patch(model, clean, corrupted, B, T,
                List.of(Patching.Patch.all("blocks.0.attn.hook_z").withHead(3))))
                .isInstanceOf(TrilensException.class).hasMessageContaining("head 3 out of range");
        assertThatThrownBy(() -> Patching.patch(model, clean, corrupted, B, T,
                List.of(Patching.Patch.at("blocks.0.attn.hook_z", 8))))
                .isInstanceOf(TrilensException.class).hasMessageContaining("position 8 out of range");
        assertThatThrownBy(() -> Patching.patch(model, clean, corrupted, B, T,
                List.of(Patching.Patch.all("blocks.7.hook_resid_pre"))))
                .isInstanceOf(TrilensException.class).hasMessageContaining("no hook point named");
    }

    // ---------------------------------------------------------------------------------------------------------
    // attention swap

    /**
     * Identity embedding and unembedding, no positional embedding, zero W_Q/W_K (uniform causal attention), head 0
     * copies the attended tokens with weight 3, head 1 (if any) writes nothing. The logits at P are e_tok[P] + 3 *
     * sum_k pattern[P, k] e_tok[k].
     */
    static HookedTransformer copyModel(int heads) {
        ModelConfig cfg = new ModelConfig(8, 8, 8, 1, heads, 8, 0, false);
        Weights w = new Weights(cfg);
        for (int i = 0; i < 8; i++) {
            w.data[w.offset("embed.W_E") + i * 8 + i] = 1;
            w.data[w.offset("unembed.W_U") + i * 8 + i] = 1;
            for (int h = 0; h < heads; h++) {
                w.data[w.offset("blocks.0.attn.W_V") + (h * 8 + i) * 8 + i] = 1;
            }
            w.data[w.offset("blocks.0.attn.W_O") + i * 8 + i] = 3; // head 0 only
        }
        return new HookedTransformer(w);
    }

    private static double softmax(double target, double... others) {
        double z = Math.exp(target);
        for (double o : others) {
            z += Math.exp(o);
        }
        return Math.exp(target) / z;
    }

    @Test
    void attentionSwapOnACopyingHeadPredictsTheNewKeysToken() throws Exception {
        int[] toks = {0, 1, 2, 3, 4, 5, 6, 7};
        Patching.SwapResult r = Patching.attentionSwap(copyModel(1), toks, 5, 2);
        // before: uniform over 0..5, logits 1.5 for token 5, 0.5 for 0..4, 0 for 6 and 7
        assertThat(r.before().token()).isEqualTo(5);
        assertThat(r.before().prob()).isCloseTo(softmax(1.5, .5, .5, .5, .5, .5, 0, 0), within(1e-6));
        assertThat(r.attentionToNewKeyBefore()[0][0]).isCloseTo(1 / 6.0, within(1e-6));
        assertThat(r.attentionToSelfBefore()[0][0]).isCloseTo(1 / 6.0, within(1e-6));
        // after: logits 3 for token 2, 1 for token 5, 0 elsewhere
        assertThat(r.after().token()).isEqualTo(2);
        assertThat(r.after().prob()).isCloseTo(softmax(3, 1, 0, 0, 0, 0, 0, 0), within(1e-6));
        assertThat(r.beforeTopAfter().token()).isEqualTo(5);
        assertThat(r.beforeTopAfter().rank()).isEqualTo(2);
        assertThat(r.beforeTopAfter().prob()).isCloseTo(softmax(1, 3, 0, 0, 0, 0, 0, 0), within(1e-6));
        assertThat(r.afterTopBefore().rank()).isEqualTo(4); // after 5, then 0 and 1 (ties by token id)
        assertThat(r.nextTokenBefore().token()).isEqualTo(6);
        assertThat(r.nextTokenAfter().prob()).isCloseTo(softmax(0, 3, 1, 0, 0, 0, 0, 0), within(1e-6));
        assertThat(r.predictionChanged()).isTrue();
        assertThat(r.topAfter()).extracting(Patching.Prediction::token).startsWith(2, 5, 0);
        assertThat(r.summary()).contains("top-1 5", "-> 2");

        JsonNode json = new ObjectMapper().valueToTree(r);
        assertThat(json.fieldNames()).toIterable().contains("query_pos", "new_key_pos", "before", "after",
                "before_top_after", "after_top_before", "next_token_before", "top_before", "prediction_changed");
        assertThat(json.get("after").get("token").asInt()).isEqualTo(2);

        // onto itself at the last position: no next token, and the prediction is the token itself
        Patching.SwapResult self = Patching.attentionSwap(copyModel(1), toks, 7, 7);
        assertThat(self.after().token()).isEqualTo(7);
        assertThat(self.nextTokenAfter()).isNull();
        assertThat(self.nextToken()).isEqualTo(-1);
    }

    @Test
    void attentionSwapOfOneHeadLeavesTheOthers() {
        int[] toks = {0, 1, 2, 3, 4, 5, 6, 7};
        HookedTransformer m = copyModel(2);
        Patching.SwapResult silent = Patching.attentionSwap(m, toks, 5, 2, 0, 1);
        assertThat(silent.after()).isEqualTo(silent.before());
        assertThat(silent.predictionChanged()).isFalse();
        Patching.SwapResult copying = Patching.attentionSwap(m, toks, 5, 2, 0, 0);
        assertThat(copying.after().token()).isEqualTo(2);
        assertThat(copying.after().prob()).isCloseTo(softmax(3, 1, 0, 0, 0, 0, 0, 0), within(1e-6));
        assertThat(Patching.attentionSwap(m, toks, 5, 2).after()).isEqualTo(copying.after());
    }

    @Test
    void attentionSwapChecksPositions() {
        HookedTransformer m = copyModel(1);
        int[] toks = {0, 1, 2, 3};
        assertThatThrownBy(() -> Patching.attentionSwap(m, toks, 2, 3)).isInstanceOf(TrilensException.class)
                .hasMessage("position 2 can only attend positions 0..2 (causal mask), got 3");
        assertThatThrownBy(() -> Patching.attentionSwap(m, toks, 4, 0)).isInstanceOf(TrilensException.class)
                .hasMessage("query position 4 out of range; expected 0..3");
        assertThatThrownBy(() -> Patching.attentionSwap(m, toks, 2, 1, 0, 1)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("head 1 out of range");
    }

    @Test
    void challengeModelsPublishedSwap() {
        HookedTransformer m = new HookedTransformer(Checkpoints.load(Fixtures.challengeModel()).weights());
        TrigramDataset data = TrigramDataset.generate(75, 50, 0.05, 40, 1);
        int[] toks = data.tokensOf(0, 1);
        Patching.SwapResult r = Patching.attentionSwap(m, toks, 21, 15);
        // measured: token 8 at 21 attends itself; moved onto 15 (token 22) it completes the trigram (22, 8, 38)
        assertThat(toks[21]).isEqualTo(8);
        assertThat(toks[15]).isEqualTo(22);
        assertThat(data.completionOf(22, 8)).isEqualTo(38);
        assertThat(r.before().token()).isEqualTo(62);
        assertThat(r.before().prob()).isLessThan(0.05);
        assertThat(r.after().token()).isEqualTo(38);
        assertThat(r.after().prob()).isGreaterThan(0.99);
        assertThat(r.attentionToSelfBefore()[0][0]).isGreaterThan(0.9);
    }
}
