package dev.trilens.io;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Emits pickle opcodes by hand: a state dict needs only a dozen of them, and writing them directly keeps the output
 * within what torch's weights_only unpickler accepts (razorvine's Pickler would pick its own opcodes and globals).
 */
final class PickleWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    PickleWriter proto(int version) {
        return op(0x80).op(version);
    }

    PickleWriter global(String module, String name) {
        op('c');
        bytes((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8));
        return this;
    }

    PickleWriter mark() {
        return op('(');
    }

    PickleWriter tuple() {
        return op('t');
    }

    PickleWriter emptyTuple() {
        return op(')');
    }

    PickleWriter emptyDict() {
        return op('}');
    }

    PickleWriter reduce() {
        return op('R');
    }

    PickleWriter build() {
        return op('b');
    }

    PickleWriter setitem() {
        return op('s');
    }

    PickleWriter setitems() {
        return op('u');
    }

    PickleWriter binpersid() {
        return op('Q');
    }

    PickleWriter bool(boolean v) {
        return op(v ? 0x88 : 0x89);
    }

    PickleWriter none() {
        return op('N');
    }

    PickleWriter stop() {
        return op('.');
    }

    /** BINUNICODE: a Python 3 str. */
    PickleWriter string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        op('X');
        int32(b.length);
        bytes(b);
        return this;
    }

    PickleWriter integer(long v) {
        if (v >= 0 && v < 0x100) {
            op('K').op((int) v);
        } else if (v >= 0 && v < 0x10000) {
            op('M').op((int) v & 0xff).op((int) (v >>> 8));
        } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            op('J');
            int32((int) v);
        } else {
            op(0x8a).op(8); // LONG1, 8 little-endian two's-complement bytes
            for (int i = 0; i < 8; i++) {
                op((int) (v >>> (8 * i)) & 0xff);
            }
        }
        return this;
    }

    PickleWriter intTuple(long... values) {
        if (values.length == 0) {
            return emptyTuple();
        }
        mark();
        for (long v : values) {
            integer(v);
        }
        return tuple();
    }

    /**
     * torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, OrderedDict()), the storage
     * being persistent id ('storage', torch.&lt;storageType&gt;, key, location, numel), as torch.save writes it.
     */
    PickleWriter tensorV2(String storageType, String key, String location, long numel, long offset, long[] size,
                          long[] stride) {
        global("torch._utils", "_rebuild_tensor_v2");
        mark();
        mark().string("storage").global("torch", storageType).string(key).string(location).integer(numel).tuple();
        binpersid();
        integer(offset);
        intTuple(size);
        intTuple(stride);
        bool(false);
        global("collections", "OrderedDict").emptyTuple().reduce();
        tuple();
        return reduce();
    }

    /** Any opcode byte, for tests that build hostile or unusual pickles. */
    PickleWriter op(int opcode) {
        out.write(opcode);
        return this;
    }

    PickleWriter bytes(byte[] b) {
        out.write(b, 0, b.length);
        return this;
    }

    private void int32(int v) {
        op(v & 0xff).op((v >>> 8) & 0xff).op((v >>> 16) & 0xff).op((v >>> 24) & 0xff);
    }

    byte[] toByteArray() {
        return out.toByteArray();
    }
}
