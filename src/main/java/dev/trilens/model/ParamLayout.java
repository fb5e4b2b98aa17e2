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
        add(list, offset, "embed.W_E", v, d);
        add(list, offset, "pos_embed.W_pos", cfg.nCtx(), d);
        for (int l = 0; l < cfg.nLayers(); l++) {
            String p = "blocks." + l + ".";
            if (cfg.layerNorm()) {
                add(list, offset, p + "ln1.w", d);
                add(list, offset, p + "ln1.b", d);
                if (!cfg.attnOnly()) {
                    add(list, offset, p + "ln2.w", d);
                    add(list, offset, p + "ln2.b", d);
                }
            }
            add(list, offset, p + "attn.W_Q", h, d, dh);
            add(list, offset, p + "attn.W_O", h, dh, d);
            add(list, offset, p + "attn.b_Q", h, dh);
            add(list, offset, p + "attn.b_O", d);
            add(list, offset, p + "attn.W_K", h, d, dh);
            add(list, offset, p + "attn.W_V", h, d, dh);
            add(list, offset, p + "attn.b_K", h, dh);
            add(list, offset, p + "attn.b_V", h, dh);
            if (!cfg.attnOnly()) {
                add(list, offset, p + "mlp.W_in", d, m);
                add(list, offset, p + "mlp.b_in", m);
                add(list, offset, p + "mlp.W_out", m, d);
                add(list, offset, p + "mlp.b_out", d);
            }
        }
        if (cfg.layerNorm()) {
            add(list, offset, "ln_final.w", d);
            add(list, offset, "ln_final.b", d);
        }
        add(list, offset, "unembed.W_U", d, v);
        add(list, offset, "unembed.b_U", v);
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
