package dev.trilens.io;

import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/** Builds torch.save-style zips by hand, so tests can make the odd and the hostile ones torch itself would not. */
final class PtFiles {

    /** A contiguous tensor to put in a hand-built state dict. */
    record T(String storageType, long[] shape, byte[] data) {
        static T f32(long[] shape, float... values) {
            return new T("FloatStorage", shape, floats(ByteOrder.LITTLE_ENDIAN, values));
        }
    }

    private PtFiles() {
    }

    static byte[] floats(ByteOrder order, float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(order);
        b.asFloatBuffer().put(values);
        return b.array();
    }

    static byte[] doubles(double... values) {
        ByteBuffer b = ByteBuffer.allocate(8 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asDoubleBuffer().put(values);
        return b.array();
    }

    /** A zip of the given entries, in order. */
    static Path zip(Path file, Map<String, byte[]> entries) throws IOException {
        try (OutputStream out = Files.newOutputStream(file); ZipOutputStream zip = new ZipOutputStream(out)) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                zip.putNextEntry(new ZipEntry(e.getKey()));
                zip.write(e.getValue());
                zip.closeEntry();
            }
        }
        return file;
    }

    /** An OrderedDict state dict with one storage per tensor, each storage key its index. */
    static Path stateDict(Path file, Map<String, T> tensors) throws IOException {
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark();
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("archive/data.pkl", null);
        int i = 0;
        for (Map.Entry<String, T> e : tensors.entrySet()) {
            T t = e.getValue();
            long numel = 1;
            for (long d : t.shape()) {
                numel *= d;
            }
            long[] stride = new long[t.shape().length];
            long acc = 1;
            for (int d = stride.length - 1; d >= 0; d--) {
                stride[d] = acc;
                acc *= t.shape()[d];
            }
            pkl.string(e.getKey()).tensorV2(t.storageType(), String.valueOf(i), "cpu", numel, 0, t.shape(), stride);
            entries.put("archive/data/" + i, t.data());
            i++;
        }
        entries.put("archive/data.pkl", pkl.setitems().stop().toByteArray());
        entries.put("archive/version", "3\n".getBytes());
        return zip(file, entries);
    }

    /** The model's parameters as hand-built tensors, for tests that then drop, add or reshape some. */
    static Map<String, T> tensorsOf(Weights w) {
        Map<String, T> out = new LinkedHashMap<>();
        for (ParamLayout.Param p : w.layout.params()) {
            long[] shape = java.util.Arrays.stream(p.shape()).asLongStream().toArray();
            out.put(p.name(), T.f32(shape, w.copyOf(p.name())));
        }
        return out;
    }
}
