package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

class HookedTransformerTest {

    static Stream<ModelConfig> configs() {
        return Stream.of(
                ModelConfig.arena(),
                new ModelConfig(11, 9, 12, 1, 1, 4, 0, false),        // attention-only
                new ModelConfig(13, 8, 12, 2, 3, 4, 10, true),        // LayerNorm, 2 layers, 3 heads
                new ModelConfig(7, 6, 8, 2, 2, 4, 0, true));          // LayerNorm, attention-only
    }

    static int[] randomTokens(ModelConfig cfg, int B, int T, long seed) {
        Random r = new Random(seed);
        int[] tokens = new int[B * T];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(cfg.dVocab());
        }
        return tokens;
    }

    @ParameterizedTest
    @MethodSource("configs")
    void forwardMatchesNaiveReference(ModelConfig cfg) {
        Weights w = Weights.init(cfg, 7);
        randomizeBiasesAndNorms(w, 8);
        int B = 5, T = cfg.nCtx();
        int[] tokens = randomTokens(cfg, B, T, 9);
        float[] logits = new HookedTransformer(w).forward(tokens, B, T).data();
        double[] ref = ReferenceForward.logits(w, tokens, B, T);
        for (int i = 0; i < ref.length; i++) {
            assertThat((double) logits[i]).as("logit %d", i).isCloseTo(ref[i], org.assertj.core.data.Offset.offset(1e-4));
        }
    }

    @ParameterizedTest
    @MethodSource("configs")
    void oneModelRunAtSeveralLengthsGivesWhatAFreshModelGivesAtEach(ModelConfig cfg) {
        Weights w = Weights.init(cfg, 12);
        randomizeBiasesAndNorms(w, 13);
        HookedTransformer reused = new HookedTransformer(w);
        int B = 3;
        // lengths in turn and back, with and without per-head results: each pass's plan is kept by length and kind
        int[] lengths = {cfg.nCtx(), 2, cfg.nCtx(), 1, 2};
        for (int i = 0; i < lengths.length; i++) {
            int T = lengths[i];
            int[] tokens = randomTokens(cfg, B, T, 20 + i);
            String result = HookNames.attn(0, "result");
            boolean perHead = i % 2 == 0;
            HookedTransformer.Run again = reused.runWithCache(tokens, B, T, name -> perHead && name.equals(result));
            HookedTransformer.Run fresh = new HookedTransformer(w).runWithCache(tokens, B, T,
                    name -> perHead && name.equals(result));
            assertThat(again.logits().data()).as("T=%d", T).containsExactly(fresh.logits().data());
            assertThat(again.cache().names()).isEqualTo(fresh.cache().names());
        }
    }

    @ParameterizedTest
    @MethodSource("configs")
    void cachedHookedAndPlainRunsAgree(ModelConfig cfg) {
        Weights w = Weights.init(cfg, 3);
        HookedTransformer model = new HookedTransformer(w);
        int B = 4, T = cfg.nCtx() - 1;
        int[] tokens = randomTokens(cfg, B, T, 4);
        float[] plain = model.forward(tokens, B, T).data();
        HookedTransformer.Run cached = model.runWithCache(tokens, B, T, name -> !name.endsWith("hook_result"));
        Hook noop = (act, name) -> { };
        List<Hook.At> everywhere = model.hookNames().stream().map(n -> Hook.at(n, noop)).toList();
        HookedTransformer.Run hooked = model.run(tokens, B, T, name -> true, everywhere);
        assertThat(cached.logits().data()).containsExactly(plain);
        // summing per-head results rounds differently from one matmul over all heads
        assertThat(hooked.logits().data()).containsExactly(plain, org.assertj.core.data.Offset.offset(1e-5f));
        for (String name : cached.cache().names()) {
            assertThat(hooked.cache().get(name).data()).as(name)
                    .containsExactly(cached.cache().get(name).data(), org.assertj.core.data.Offset.offset(1e-5f));
        }
        assertThat(hooked.cache().names()).containsAll(model.hookNames());
    }

    @Test
    void aPassWithoutLogitsKeepsTheSameCacheAndRunsItsHooks() {
        ModelConfig cfg = new ModelConfig(13, 8, 12, 2, 3, 4, 10, true);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 4));
        int[] tokens = randomTokens(cfg, 3, 8, 2);
        HookedTransformer.Run full = model.runWithCache(tokens, 3, 8, n -> true);
        int[] hookCalls = {0};
        HookedTransformer.Run noLogits = model.run(tokens, 3, 8, n -> true,
                List.of(new Hook.At("blocks.1.hook_resid_post", (t, name) -> hookCalls[0]++)), false);
        assertThat(noLogits.logits()).isNull();
        assertThat(hookCalls[0]).isEqualTo(1);
        assertThat(noLogits.cache().names()).containsExactlyElementsOf(full.cache().names())
                .contains("ln_final.hook_normalized");
        for (String name : full.cache().names()) {
            assertThat(noLogits.cache().get(name).data()).as(name).containsExactly(full.cache().get(name).data());
        }
    }

    @Test
    void cacheKeepsOnlyWhatWasAskedFor() {
        HookedTransformer model = new HookedTransformer(Weights.init(ModelConfig.arena(), 1));
        int[] tokens = randomTokens(ModelConfig.arena(), 2, 50, 1);
        ActivationCache cache = model.runWithCache(tokens, 2, 50, n -> n.endsWith("hook_pattern")).cache();
        assertThat(cache.names()).containsExactly("blocks.0.attn.hook_pattern");
        Tensor pattern = cache.pattern(0);
        assertThat(pattern.shape()).containsExactly(2, 1, 50, 50);
        for (int i = 0; i < 50; i++) {
            float rowSum = 0;
            for (int j = 0; j < 50; j++) {
                float p = pattern.get(1, 0, i, j);
                if (j > i) {
                    assertThat(p).isZero();
                }
                rowSum += p;
            }
            assertThat(rowSum).isCloseTo(1f, org.assertj.core.data.Offset.offset(1e-5f));
        }
        assertThatThrownBy(() -> cache.get("blocks.0.hook_mlp_out")).isInstanceOf(TrilensException.class)
                .hasMessageContaining("not in the cache");
    }

    @Test
    void closedCachesHandTheirMemoryToTheNextPassWithoutChangingIt() {
        ModelConfig cfg = new ModelConfig(13, 8, 12, 2, 3, 4, 10, true);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 1));
        int[] first = randomTokens(cfg, 3, 8, 1), second = randomTokens(cfg, 3, 8, 2);
        ActivationCache fresh = model.runWithCache(second, 3, 8, n -> true).cache();
        ActivationCache used = model.runWithCache(first, 3, 8, n -> true).cache();
        java.util.Set<float[]> released = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (String name : used.names()) {
            released.add(used.get(name).data());
        }
        used.close();
        assertThatThrownBy(() -> used.get("blocks.1.attn.hook_pattern")).isInstanceOf(IllegalStateException.class);
        ActivationCache reused = model.runWithCache(second, 3, 8, n -> true).cache();
        for (String name : reused.names()) {
            assertThat(released.contains(reused.get(name).data())).as("%s reuses released memory", name).isTrue();
        }
        for (String name : fresh.names()) {
            assertThat(reused.get(name).data()).as(name).containsExactly(fresh.get(name).data());
        }
    }

    @Test
    void cacheShapesFollowTransformerLens() {
        ModelConfig cfg = new ModelConfig(13, 8, 12, 2, 3, 4, 10, true);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 1));
        ActivationCache c = model.runWithCache(randomTokens(cfg, 2, 8, 2), 2, 8, n -> true).cache();
        assertThat(c.get("q", 1).shape()).containsExactly(2, 8, 3, 4);
        assertThat(c.get("attn_scores", 0).shape()).containsExactly(2, 3, 8, 8);
        assertThat(c.get("result", 0).shape()).containsExactly(2, 8, 3, 12);
        assertThat(c.get("blocks.1.ln2.hook_scale").shape()).containsExactly(2, 8, 1);
        assertThat(c.get("post", 1).shape()).containsExactly(2, 8, 10);
        assertThat(c.get("ln_final.hook_normalized").shape()).containsExactly(2, 8, 12);
        assertThat(c.get("attn_scores", 0).get(0, 0, 2, 5)).isEqualTo(Float.NEGATIVE_INFINITY);
        // blocks.1's input is blocks.0's output
        assertThat(c.get("resid_pre", 1).data()).containsExactly(c.get("resid_post", 0).data());
    }

    @Test
    void zeroAblatingMlpOutEqualsRemovingTheMlp() {
        ModelConfig cfg = ModelConfig.arena();
        Weights full = Weights.init(cfg, 11);
        randomizeBiasesAndNorms(full, 12);
        Weights attnOnly = new Weights(cfg.withDMlp(0));
        for (ParamLayout.Param p : attnOnly.layout.params()) {
            System.arraycopy(full.data, full.offset(p.name()), attnOnly.data, p.offset(), p.size());
        }
        int[] tokens = randomTokens(cfg, 6, 50, 13);
        Tensor ablated = new HookedTransformer(full).runWithHooks(tokens, 6, 50,
                List.of(Hook.at("blocks.0.hook_mlp_out", (act, name) -> Arrays.fill(act.data(), 0f))));
        Tensor removed = new HookedTransformer(attnOnly).forward(tokens, 6, 50);
        assertThat(ablated.data()).containsExactly(removed.data());
        assertThat(new HookedTransformer(full).forward(tokens, 6, 50).data()).isNotEqualTo(removed.data());
    }

    @Test
    void patchingHookChangesExactlyThePatchedPositions() {
        ModelConfig cfg = ModelConfig.arena();
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 21));
        int B = 3, T = 50, V = cfg.dVocab(), D = cfg.dModel();
        int[] clean = randomTokens(cfg, B, T, 1);
        int[] corrupted = randomTokens(cfg, B, T, 2);
        Tensor cleanLogits = model.forward(clean, B, T);
        Tensor corruptMlp = model.runWithCache(corrupted, B, T, n -> n.equals("blocks.0.hook_mlp_out")).cache()
                .get("blocks.0.hook_mlp_out");
        int[] patched = {7, 30};
        Hook patch = (act, name) -> {
            for (int b = 0; b < B; b++) {
                for (int t : patched) {
                    int at = (b * T + t) * D;
                    System.arraycopy(corruptMlp.data(), at, act.data(), at, D);
                }
            }
        };
        Tensor patchedLogits = model.runWithHooks(clean, B, T, List.of(Hook.at("blocks.0.hook_mlp_out", patch)));
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                float[] before = Arrays.copyOfRange(cleanLogits.data(), (b * T + t) * V, (b * T + t + 1) * V);
                float[] after = Arrays.copyOfRange(patchedLogits.data(), (b * T + t) * V, (b * T + t + 1) * V);
                if (t == 7 || t == 30) {
                    assertThat(after).as("patched (%d, %d)", b, t).isNotEqualTo(before);
                } else {
                    assertThat(after).as("untouched (%d, %d)", b, t).containsExactly(before);
                }
            }
        }
    }

    @Test
    void hookOnPatternReroutesAttention() {
        ModelConfig cfg = ModelConfig.arena();
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 5));
        int[] tokens = randomTokens(cfg, 1, 50, 6);
        HookedTransformer.Run run = model.run(tokens, 1, 50, n -> n.endsWith("hook_z") || n.endsWith("hook_v"),
                List.of(Hook.at("blocks.0.attn.hook_pattern", (act, name) -> {
                    int T = 50;
                    Arrays.fill(act.data(), 20 * T, 21 * T, 0f);
                    act.data()[20 * T + 3] = 1f;
                })));
        Tensor z = run.cache().get("z", 0);
        Tensor v = run.cache().get("v", 0);
        for (int e = 0; e < cfg.dHead(); e++) {
            assertThat(z.get(0, 20, 0, e)).isEqualTo(v.get(0, 3, 0, e));
        }
    }

    @Test
    void badInputsAreClearErrors() {
        HookedTransformer model = new HookedTransformer(Weights.init(ModelConfig.arena(), 1));
        assertThatThrownBy(() -> model.forward(new int[] {1, 2, 75}, 1, 3)).isInstanceOf(TrilensException.class)
                .hasMessage("token 75 at sequence 0, position 2 is outside the vocabulary [0, 75)");
        assertThatThrownBy(() -> model.forward(new int[51], 1, 51)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("exceeds the model's n_ctx 50");
        assertThatThrownBy(() -> model.runWithHooks(new int[3], 1, 3, List.of(Hook.at("blocks.0.hook_mlp", (a, n) -> { }))))
                .isInstanceOf(TrilensException.class).hasMessageContaining("no hook point named 'blocks.0.hook_mlp'");
    }

    /** Init leaves biases at 0 and LayerNorm at identity; give them values so the reference tests cover them. */
    static void randomizeBiasesAndNorms(Weights w, long seed) {
        Random r = new Random(seed);
        for (ParamLayout.Param p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (leaf.startsWith("b") || leaf.equals("w")) {
                for (int i = 0; i < p.size(); i++) {
                    w.data[p.offset() + i] = (leaf.equals("w") ? 1f : 0f) + (float) (r.nextGaussian() * 0.1);
                }
            }
        }
    }
}
