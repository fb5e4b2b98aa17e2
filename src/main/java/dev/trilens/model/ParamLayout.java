package dev.trilens.model;

import dev.trilens.TrilensException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * All parameters of a model as named regions of one flat float array, in TransformerLens's state-dict order and
 * shapes. Saving, loading, gradients and AdamW are all walks over this one table.
 */
public final class ParamLayout {

    /** One named parameter: where it starts in the flat array and its TransformerLens shape. */
    public record Param(String name, int[] shape, int offset) {
        public int size() {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        public String shapeString() {
            return Arrays.toString(shape);
        }
    }

    // TransformerLens's parameter names, built in one place

    public static final String W_E = "embed.W_E", W_POS = "pos_embed.W_pos", W_U = "unembed.W_U", B_U = "unembed.b_U";
    /** The final LayerNorm's prefix: its parameters are LN_FINAL + ".w" and ".b". */
    public static final String LN_FINAL = "ln_final";

    /** "blocks.{layer}." */
    public static String block(int layer) {
        return "blocks." + layer + ".";
    }

    /** W_Q, W_K, W_V or W_O of a layer's attention (which: "Q", "K", "V" or "O"). */
    public static String attnWeight(int layer, String which) {
        return block(layer) + "attn.W_" + which;
    }

    /** b_Q, b_K, b_V or b_O of a layer's attention. */
    public static String attnBias(int layer, String which) {
        return block(layer) + "attn.b_" + which;
    }

    /** A layer's MLP parameter: "W_in", "b_in", "W_out" or "b_out". */
    public static String mlp(int layer, String which) {
        return block(layer) + "mlp." + which;
    }

    /** The prefix of a layer's first LayerNorm (before attention): its parameters are ln1(l) + ".w" and ".b". */
    public static String ln1(int layer) {
        return block(layer) + "ln1";
    }

    /** The prefix of a layer's second LayerNorm (before the MLP). */
    public static String ln2(int layer) {
        return block(layer) + "ln2";
    }

    /** One flat float[] holds every parameter, and Java arrays stop just short of 2^31 elements. */
    public static final long MAX_PARAMS = Integer.MAX_VALUE - 8;
    /** TransformerLens state dicts name blocks with at most four digits (see StateDictSchema). */
    public static final int MAX_LAYERS = 10_000;

    private final List<Param> params;
    private final Map<String, Param> byName;
    private final int totalSize;

    /** Refuses a config too large for one array before building anything, so its sizes may come from a file. */
    public ParamLayout(ModelConfig cfg) {
        if (cfg.nLayers() > MAX_LAYERS) {
            throw new TrilensException("n_layers is " + cfg.nLayers() + ", expected at most " + MAX_LAYERS);
        }
        long count = count(cfg);
        if (count > MAX_PARAMS) {
            throw new TrilensException("a model with " + cfg + " has " + (count == Long.MAX_VALUE ? "over 2^63"
                    : String.valueOf(count)) + " parameters, expected at most " + MAX_PARAMS);
        }
        List<Param> list = new ArrayList<>();
        int[] offset = {0};
        int v = cfg.dVocab(), d = cfg.dModel(), h = cfg.nHeads(), dh = cfg.dHead(), m = cfg.dMlp();
        add(list, offset, W_E, v, d);
        add(list, offset, W_POS, cfg.nCtx(), d);
        for (int l = 0; l < cfg.nLayers(); l++) {
            if (cfg.layerNorm()) {
                add(list, offset, ln1(l) + ".w", d);
                add(list, offset, ln1(l) + ".b", d);
                if (!cfg.attnOnly()) {
                    add(list, offset, ln2(l) + ".w", d);
                    add(list, offset, ln2(l) + ".b", d);
                }
            }
            add(list, offset, attnWeight(l, "Q"), h, d, dh);
            add(list, offset, attnWeight(l, "O"), h, dh, d);
            add(list, offset, attnBias(l, "Q"), h, dh);
            add(list, offset, attnBias(l, "O"), d);
            add(list, offset, attnWeight(l, "K"), h, d, dh);
            add(list, offset, attnWeight(l, "V"), h, d, dh);
            add(list, offset, attnBias(l, "K"), h, dh);
            add(list, offset, attnBias(l, "V"), h, dh);
            if (!cfg.attnOnly()) {
                add(list, offset, mlp(l, "W_in"), d, m);
                add(list, offset, mlp(l, "b_in"), m);
                add(list, offset, mlp(l, "W_out"), m, d);
                add(list, offset, mlp(l, "b_out"), d);
            }
        }
        if (cfg.layerNorm()) {
            add(list, offset, LN_FINAL + ".w", d);
            add(list, offset, LN_FINAL + ".b", d);
        }
        add(list, offset, W_U, d, v);
        add(list, offset, B_U, v);
        this.params = Collections.unmodifiableList(list);
        Map<String, Param> map = new LinkedHashMap<>();
        for (Param p : list) {
            map.put(p.name(), p);
        }
        this.byName = Collections.unmodifiableMap(map);
        this.totalSize = offset[0];
    }

    /**
     * How many parameters a model of this config has (Long.MAX_VALUE if more than a long holds), in a few
     * multiplications: the layout's loop over layers must not be what finds out that a config is absurd.
     */
    public static long count(ModelConfig cfg) {
        try {
            long v = cfg.dVocab(), n = cfg.nCtx(), d = cfg.dModel(), h = cfg.nHeads(), dh = cfg.dHead(),
                    m = cfg.dMlp();
            long hd = Math.multiplyExact(h, dh);
            long layer = Math.addExact(Math.multiplyExact(4, Math.multiplyExact(hd, d)), 3 * hd + d);
            if (!cfg.attnOnly()) {
                layer = Math.addExact(layer, Math.addExact(Math.multiplyExact(2, Math.multiplyExact(d, m)), m + d));
            }
            if (cfg.layerNorm()) {
                layer += (cfg.attnOnly() ? 2 : 4) * d;
            }
            long total = Math.addExact(Math.multiplyExact(cfg.nLayers(), layer),
                    Math.addExact(Math.multiplyExact(2, Math.multiplyExact(v, d)), Math.multiplyExact(n, d) + v));
            return cfg.layerNorm() ? Math.addExact(total, 2 * d) : total;
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    private static void add(List<Param> list, int[] offset, String name, int... shape) {
        Param p = new Param(name, shape, offset[0]);
        list.add(p);
        offset[0] += p.size();
    }

    public List<Param> params() {
        return params;
    }

    /** The parameter with this TransformerLens name, or null. */
    public Param find(String name) {
        return byName.get(name);
    }

    public Param get(String name) {
        Param p = byName.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no parameter named " + name);
        }
        return p;
    }

    public int offset(String name) {
        return get(name).offset();
    }

    public int totalSize() {
        return totalSize;
    }
}
