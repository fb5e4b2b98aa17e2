package dev.trilens.io;

import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import java.util.Arrays;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a TransformerLens HookedTransformer state dict must contain, shared by the .pt and safetensors readers: the
 * config follows from the keys and shapes, and every parameter of that config must be present with its exact shape.
 */
final class StateDictSchema {

    /** A tensor's dtype (torch's name, e.g. "float32") and shape, known before its values are read. */
    record Entry(String dtype, int[] shape) {
    }

    private static final Pattern BLOCK = Pattern.compile("blocks\\.(\\d{1,4})\\.(.+)");
    /** HookedTransformer buffers: derived from the config, never trained, so a checkpoint may carry them or not. */
    private static final Pattern BUFFER = Pattern.compile("blocks\\.\\d+\\.attn\\.(mask|IGNORE|rotary_sin|rotary_cos)");

    private StateDictSchema() {
    }

    static boolean isBuffer(String key) {
        return BUFFER.matcher(key).matches();
    }

    static boolean isFloat(String dtype) {
        return switch (dtype) {
            case "float32", "float64", "float16", "bfloat16" -> true;
            default -> false;
        };
    }

    /**
     * The config of the model these tensors belong to, checked against every tensor: fromMetadata when the file
     * states it, else inferred from the shapes. Throws naming the first missing, misshapen or unexpected key.
     */
    static ModelConfig resolve(String file, Map<String, Entry> entries, ModelConfig fromMetadata) {
        ModelConfig cfg = fromMetadata != null ? fromMetadata : infer(file, entries);
        check(file, cfg, entries);
        return cfg;
    }

    static ModelConfig infer(String file, Map<String, Entry> entries) {
        int[] wE = require(file, entries, "embed.W_E", "[d_vocab, d_model]", 2);
        int[] wPos = require(file, entries, "pos_embed.W_pos", "[n_ctx, " + wE[1] + "]", 2);
        int nLayers = 0;
        boolean mlp = false;
        boolean ln = false;
        for (String key : entries.keySet()) {
            Matcher m = BLOCK.matcher(key);
            if (m.matches()) {
                nLayers = Math.max(nLayers, Integer.parseInt(m.group(1)) + 1);
                mlp |= m.group(2).startsWith("mlp.");
                ln |= m.group(2).startsWith("ln1.") || m.group(2).startsWith("ln2.");
            }
            ln |= key.startsWith("ln_final.");
        }
        if (nLayers == 0) {
            throw new TrilensException("checkpoint " + file + " has no 'blocks.0.attn.W_Q' (expected shape [n_heads, "
                    + wE[1] + ", d_head]): not a TransformerLens HookedTransformer state dict?");
        }
        int[] wQ = require(file, entries, "blocks.0.attn.W_Q", "[n_heads, " + wE[1] + ", d_head]", 3);
        int dMlp = mlp ? require(file, entries, "blocks.0.mlp.W_in", "[" + wE[1] + ", d_mlp]", 2)[1] : 0;
        try {
            return new ModelConfig(wE[0], wPos[0], wE[1], nLayers, wQ[0], wQ[2], dMlp, ln);
        } catch (TrilensException e) {
            throw new TrilensException("checkpoint " + file + ": " + e.getMessage(), e);
        }
    }

    static void check(String file, ModelConfig cfg, Map<String, Entry> entries) {
        // a config from metadata is only a claim: hold its layer count against the tensors present before looping
        // over its layers (its other sizes are bounded by ParamLayout, then compared shape by shape)
        int layers = 0;
        for (Map.Entry<String, Entry> e : entries.entrySet()) {
            Matcher m = BLOCK.matcher(e.getKey());
            if (m.matches()) {
                layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
            }
        }
        if (cfg.nLayers() > layers) {
            throw new TrilensException("checkpoint " + file + ": its config says n_layers=" + cfg.nLayers()
                    + ", but it holds tensors for " + layers + " layer(s): expected a config that describes the "
                    + "tensors present");
        }
        ParamLayout layout;
        try {
            layout = new ParamLayout(cfg);
        } catch (TrilensException e) {
            throw new TrilensException("checkpoint " + file + ": " + e.getMessage(), e);
        }
        for (ParamLayout.Param p : layout.params()) {
            Entry e = entries.get(p.name());
            if (e == null) {
                throw new TrilensException("checkpoint " + file + " has no '" + p.name() + "' (expected shape "
                        + p.shapeString() + ")");
            }
            if (!Arrays.equals(e.shape(), p.shape())) {
                throw new TrilensException("checkpoint " + file + ": '" + p.name() + "' has shape "
                        + Arrays.toString(e.shape()) + ", expected " + p.shapeString());
            }
            if (!isFloat(e.dtype())) {
                throw new TrilensException("checkpoint " + file + ": '" + p.name() + "' has dtype " + e.dtype()
                        + ", expected a floating-point tensor");
            }
        }
        for (String key : entries.keySet()) {
            if (layout.find(key) == null && !isBuffer(key)) {
                throw new TrilensException("checkpoint " + file + ": unexpected key '" + FileText.show(key)
                        + "', not a parameter of a HookedTransformer with " + cfg);
            }
        }
    }

    private static int[] require(String file, Map<String, Entry> entries, String key, String expected, int rank) {
        Entry e = entries.get(key);
        if (e == null) {
            throw new TrilensException("checkpoint " + file + " has no '" + key + "' (expected shape " + expected
                    + "): not a TransformerLens HookedTransformer state dict?");
        }
        if (e.shape().length != rank) {
            throw new TrilensException("checkpoint " + file + ": '" + key + "' has shape "
                    + Arrays.toString(e.shape()) + ", expected " + expected);
        }
        return e.shape();
    }
}
