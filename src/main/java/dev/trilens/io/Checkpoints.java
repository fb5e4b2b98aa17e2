package dev.trilens.io;

import dev.trilens.TrilensException;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import dev.trilens.model.kernels.VectorWidth;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/** Loads a model file of any supported format, telling them apart by content rather than by file name. */
public final class Checkpoints {

    private Checkpoints() {
    }

    /** A PyTorch zip checkpoint (.pt, .pth) or a safetensors file, refused if a parameter is NaN or infinite. */
    public static Checkpoint load(Path path) {
        return load(path, false);
    }

    /**
     * As {@link #load(Path)}; allowNonFinite loads NaN and infinite parameters instead of refusing them (a model
     * that diverged can still be looked at, but its metrics mean nothing).
     */
    public static Checkpoint load(Path path, boolean allowNonFinite) {
        Checkpoint c;
        try {
            c = loadAnyFormat(path);
        } catch (StackOverflowError e) {
            throw new TrilensException("model file " + path + " could not be read: its structure nests too deeply "
                    + "(" + e + "), expected a state dict", e);
        } catch (OutOfMemoryError e) {
            throw new TrilensException("model file " + path + " needs more memory than the Java heap's "
                    + (Runtime.getRuntime().maxMemory() >> 20) + " MiB to load (" + e.getMessage() + "); "
                    + "expected a smaller model, or a larger heap (TRILENS_JAVA_OPTS=-Xmx...)", e);
        }
        if (!allowNonFinite) {
            requireFinite(path, c.weights());
        }
        // the command runs this model: its d_head may call for narrower vectors (if no kernel has run yet)
        VectorWidth.preferFor(c.weights().cfg.dHead());
        return c;
    }

    /** Names the first NaN or infinite parameter value by tensor and index. */
    static void requireFinite(Path path, Weights w) {
        for (ParamLayout.Param p : w.layout.params()) {
            for (int i = 0; i < p.size(); i++) {
                float v = w.data[p.offset() + i];
                if (!Float.isFinite(v)) {
                    long bad = 0;
                    for (float x : w.data) {
                        bad += Float.isFinite(x) ? 0 : 1;
                    }
                    throw new TrilensException("model file " + path + ": parameter '" + p.name() + "' holds "
                            + v + " at index " + index(p.shape(), i) + " (" + (bad == 1 ? "the only non-finite "
                            + "value" : "the first of " + bad + " non-finite values") + "): expected finite weights;"
                            + " pass --allow-non-finite to load it anyway");
                }
            }
        }
    }

    /** The multi-dimensional index of a row-major flat one, as [i, j, k]. */
    private static String index(int[] shape, int flat) {
        int[] idx = new int[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        return Arrays.toString(idx);
    }

    private static Checkpoint loadAnyFormat(Path path) {
        requireFile(path);
        byte[] magic;
        long size;
        try (InputStream in = Files.newInputStream(path)) {
            magic = in.readNBytes(8);
            size = Files.size(path);
        } catch (IOException e) {
            throw new TrilensException("cannot read model file " + path + ": " + AtomicFiles.describe(e), e);
        }
        if (magic.length >= 4 && magic[0] == 'P' && magic[1] == 'K' && (magic[2] == 3 || magic[2] == 5)) {
            return new Checkpoint(TorchCheckpoint.load(path), Map.of());
        }
        // torch.save before 1.6 wrote a bare pickle starting with protocol 2 and its LONG1 magic number
        if (magic.length >= 4 && (magic[0] & 0xff) == 0x80 && magic[1] == 2 && (magic[2] & 0xff) == 0x8a) {
            throw new TrilensException("model file " + path + " is in the legacy (pre-1.6, not zip) torch.save "
                    + "format: expected a zip checkpoint; re-save it with torch.save(model.state_dict(), path) "
                    + "on PyTorch 1.6 or later");
        }
        // safetensors opens with its little-endian header length, which must fit in the file
        long headerLength = 0;
        for (int i = magic.length - 1; i >= 0; i--) {
            headerLength = (headerLength << 8) | (magic[i] & 0xff);
        }
        if (magic.length == 8 && (headerLength < 2 || headerLength > size - 8)) {
            throw new TrilensException("model file " + path + " is neither a PyTorch checkpoint (zip) nor a "
                    + "safetensors file: expected one written by torch.save or by trilens");
        }
        return Safetensors.read(path);
    }

    static void requireFile(Path path) {
        if (Files.isDirectory(path)) {
            throw new TrilensException("model file not found: " + path
                    + " (it is a folder, expected a .pt or .safetensors file)");
        }
        if (!Files.isRegularFile(path)) {
            throw new TrilensException("model file not found: " + path);
        }
        if (!Files.isReadable(path)) {
            throw new TrilensException("model file not found: " + path + " (it is not readable)");
        }
    }
}
