package dev.trilens.model;

import dev.trilens.TrilensException;
import java.util.Set;

/** TransformerLens hook-point names and their short forms (utils.get_act_name). */
public final class HookNames {
    private static final Set<String> ATTN = Set.of("q", "k", "v", "z", "attn_scores", "pattern", "result");
    private static final Set<String> MLP = Set.of("pre", "post");
    private static final Set<String> BLOCK = Set.of("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out");

    private HookNames() {
    }

    /** The unembed's output: not a hook point, but the name the forward pass gives its last activation. */
    public static final String LOGITS = "logits";
    /** The final LayerNorm's prefix: LN_FINAL + ".hook_scale" and ".hook_normalized". */
    public static final String LN_FINAL = "ln_final";

    public static String residPre(int layer) {
        return block(layer) + "hook_resid_pre";
    }

    public static String residMid(int layer) {
        return block(layer) + "hook_resid_mid";
    }

    public static String residPost(int layer) {
        return block(layer) + "hook_resid_post";
    }

    public static String attnOut(int layer) {
        return block(layer) + "hook_attn_out";
    }

    public static String mlpOut(int layer) {
        return block(layer) + "hook_mlp_out";
    }

    /** A layer's attention hook: q, k, v, attn_scores, pattern, z or result. */
    public static String attn(int layer, String which) {
        return block(layer) + "attn.hook_" + which;
    }

    /** A layer's MLP hook: pre or post. */
    public static String mlp(int layer, String which) {
        return block(layer) + "mlp.hook_" + which;
    }

    /** The prefix of a layer's first LayerNorm's hooks: ln1(l) + ".hook_scale" and ".hook_normalized". */
    public static String ln1(int layer) {
        return block(layer) + "ln1";
    }

    public static String ln2(int layer) {
        return block(layer) + "ln2";
    }

    private static String block(int layer) {
        return "blocks." + layer + ".";
    }

    public static String full(String shortName, int layer) {
        String s = shortName.startsWith("hook_") ? shortName.substring(5) : shortName;
        if (ATTN.contains(s)) {
            return attn(layer, s);
        }
        if (MLP.contains(s)) {
            return mlp(layer, s);
        }
        if (BLOCK.contains(s)) {
            return block(layer) + "hook_" + s;
        }
        throw new TrilensException("unknown short hook name '" + shortName + "'; expected one of " + ATTN + ", "
                + MLP + ", " + BLOCK);
    }
}
