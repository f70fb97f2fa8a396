// floor: the syscall floor of a TCP transfer over loopback, for scripts/bench-tcp.sh.
// Nothing but the syscalls: the sender vmsplices one 64 KiB buffer into a 64 KiB pipe
// and splices it into the socket with SPLICE_F_MORE, again and again (it reuses the
// page at once: unsafe for real data, fine for a floor); the receiver reads 1 MiB at a
// time until EOF, waking only once 256 KiB are queued (SO_RCVLOWAT, socket(7), as
// splicegen's read sink does). Without it every arrival woke the reader, and on loopback
// the sender pays for each wake-up in its softirq: the floor sender cost 2.2-2.8 s per
// 4 GiB against 1.3-1.4 s with splicegen's receiver (2026-11-26). Blocking descriptors,
// one thread each.
//   floor recv PORT
//   floor send HOST PORT BYTES
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MSG (64 << 10)

static int die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
	if (argc == 3 && !strcmp(argv[1], "recv")) {
		int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
		if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1)) die("listen");
		int s = accept(ls, 0, 0);
		if (s < 0) die("accept");
		int lowat = 256 << 10;
		setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
		static char buf[1 << 20];
		long long total = 0;
		for (ssize_t n; (n = read(s, buf, sizeof buf)) != 0; total += n)
			if (n < 0) die("read");
		printf("%lld\n", total);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "send")) {
		int s = socket(AF_INET, SOCK_STREAM, 0), p[2];
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		if (connect(s, (void *)&a, sizeof a)) die("connect");
		if (pipe(p)) die("pipe");
		fcntl(p[1], F_SETPIPE_SZ, MSG);
		static char buf[MSG] __attribute__((aligned(4096)));
		memset(buf, 'x', sizeof buf);
		long long left = atoll(argv[4]);
		while (left > 0) {
			struct iovec iov = {buf, MSG};
			ssize_t in = vmsplice(p[1], &iov, 1, 0);
			if (in <= 0) die("vmsplice");
			while (in > 0) {
				ssize_t n = splice(p[0], 0, s, 0, in, SPLICE_F_MORE);
				if (n <= 0) die("splice");
				in -= n;
				left -= n;
			}
		}
		close(s);
		return 0;
	}
	fprintf(stderr, "usage: floor recv PORT | floor send HOST PORT BYTES\n");
	return 2;
}
