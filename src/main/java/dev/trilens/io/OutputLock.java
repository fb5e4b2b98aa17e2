package dev.trilens.io;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * One writer per output folder: two `train` runs into one `--out` would each overwrite the other's files and both
 * exit 0. The lock is the operating system's lock on {@code .trilens.lock} in the folder, so it is released when the
 * process ends however it ends (kill -9 included). The holder deletes the file when it is done; a file left by a
 * killed process is stale exactly when nobody holds its lock, and the next writer takes it over. The file names the holder's pid and command for the refusal message.
 */
public final class OutputLock implements AutoCloseable {
    public static final String FILE = ".trilens.lock";

    private final Path file;
    private final FileChannel channel;
    private final FileLock lock;

    private OutputLock(Path file, FileChannel channel, FileLock lock) {
        this.file = file;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Creates dir if missing and takes its lock, or refuses at once (no waiting) naming the process that holds it.
     *
     * @param command what this process is doing there, e.g. "train", for the message another writer gets
     */
    public static OutputLock acquire(Path dir, String command) {
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new TrilensException(dir + " is a file; expected a folder for the output (it is created if missing)");
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new TrilensException("cannot create output folder " + dir + ": " + AtomicFiles.describe(e), e);
        }
        Path file = dir.resolve(FILE);
        // The holder deletes the file as it releases, so a writer that opened it just before may lock the deleted
        // file. Each writer therefore checks that the path names the same file before its open and after its lock
        // (by stat: opening the path again would drop the lock, as closing any descriptor of a file drops a POSIX
        // process's locks on it), and retries if not.
        for (int attempt = 0; attempt < 10; attempt++) {
            FileChannel ch = null;
            try {
                Object before = fileKey(file, true);
                ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
                FileLock lock;
                try {
                    lock = ch.tryLock();
                } catch (OverlappingFileLockException e) {
                    lock = null; // held by this very process
                }
                if (lock == null) {
                    String holder = readHolder(ch);
                    ch.close();
                    throw new TrilensException(dir + " is in use by another trilens process" + holder
                            + "; wait for it to finish, or choose another output folder");
                }
                if (!before.equals(fileKey(file, false))) {
                    lock.release();
                    ch.close();
                    continue;
                }
                ch.truncate(0);
                ch.write(ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + " " + command + "\n")
                        .getBytes(StandardCharsets.UTF_8)), 0);
                // stopped by a signal, the process never reaches close(): its shutdown hook removes the file
                AtomicFiles.deleteOnExit(file);
                return new OutputLock(file, ch, lock);
            } catch (NoSuchFileException e) {
                closeQuietly(ch); // deleted by a holder releasing it between our steps: try again
            } catch (AccessDeniedException e) {
                closeQuietly(ch);
                throw new TrilensException("cannot write to output folder " + dir + ": permission denied", e);
            } catch (IOException e) {
                closeQuietly(ch);
                String why = e instanceof FileSystemException f && f.getReason() != null ? f.getReason()
                        : AtomicFiles.describe(e);
                throw new TrilensException("cannot write to output folder " + dir + ": " + why, e);
            }
        }
        throw new TrilensException("cannot lock output folder " + dir + ": its lock file keeps being replaced");
    }

    /** The file's identity (device and inode where the system has them), creating it first if asked. */
    private static Object fileKey(Path file, boolean create) throws IOException {
        if (create) {
            try {
                Files.createFile(file);
            } catch (FileAlreadyExistsException ignored) {
                // another writer's, or a stale one: the lock decides
            }
        }
        Object key = Files.readAttributes(file, BasicFileAttributes.class).fileKey();
        return key != null ? key : file; // no file keys here: trust the path
    }

    private static String readHolder(FileChannel ch) {
        try {
            ByteBuffer buf = ByteBuffer.allocate(200);
            int n = ch.read(buf, 0);
            String s = n <= 0 ? "" : new String(buf.array(), 0, n, StandardCharsets.UTF_8).strip();
            // our own format only: anything else in the file is not quoted back to the terminal
            return s.matches("pid \\d+ [a-z-]+") ? " (" + s + ")" : "";
        } catch (IOException e) {
            return "";
        }
    }

    private static void closeQuietly(FileChannel ch) {
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // the error being reported matters more
            }
        }
    }

    /** Deletes the file while still holding its lock, then releases it (see {@link #acquire} for the race). */
    @Override
    public void close() {
        AtomicFiles.release(file);
        try {
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // a file left behind is stale once released: the next writer takes it over
        }
        try {
            lock.release();
            channel.close();
        } catch (IOException ignored) {
            // closing releases the lock in any case
        }
    }
}
