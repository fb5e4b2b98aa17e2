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

    public static String full(String shortName, int layer) {
        String s = shortName.startsWith("hook_") ? shortName.substring(5) : shortName;
        if (ATTN.contains(s)) {
            return "blocks." + layer + ".attn.hook_" + s;
        }
        if (MLP.contains(s)) {
            return "blocks." + layer + ".mlp.hook_" + s;
        }
        if (BLOCK.contains(s)) {
            return "blocks." + layer + ".hook_" + s;
        }
        throw new TrilensException("unknown short hook name '" + shortName + "'; expected one of " + ATTN + ", "
                + MLP + ", " + BLOCK);
    }
}
