/*
 * Our own small bridge to Debian's libspandsp (0.0.6) for the caller-ID tests:
 * it generates caller-ID signals with spandsp's adsi_tx and decodes WAV files
 * with spandsp's adsi_rx, so our Python receiver and generator can be checked
 * against an independent implementation.
 *
 *   spandsp_adsi gen STANDARD OUT.wav LEVEL_DBM0 [PARAM=VALUE...]
 *       STANDARD: jclip | bellcore | etsi
 *       PARAM: number=DIGITS  absent=P|O|C|S  called=DIGITS  sdmf=1 (bellcore)
 *              lead_ms=N (silence before, default 200)
 *   spandsp_adsi dec STANDARD IN.wav
 *       prints one JSON object per decoded message:
 *       {"type":N,"fields":[[TYPE,"HEX"],...],"hex":"..."}
 *
 * Pitfalls of 0.0.6 handled here (shared/reference/telephony.md section 9):
 * adsi_tx() never returns 0 for FSK standards, so generation stops after a
 * computed number of samples; adsi_next_field() ends with a return value of
 * -1 (end) or -2 (corrupt), which is what the loop tests.
 */
#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <spandsp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 8000
#define MAX_SAMPLES (RATE * 10)   /* no file we write or read is longer than 10 s */

static int standard_of(const char *name)
{
    if (strcmp(name, "jclip") == 0) return ADSI_STANDARD_JCLIP;
    if (strcmp(name, "bellcore") == 0) return ADSI_STANDARD_CLASS;
    if (strcmp(name, "etsi") == 0) return ADSI_STANDARD_CLIP;
    fprintf(stderr, "unknown standard %s\n", name);
    exit(2);
}

static void put_le(FILE *f, unsigned v, int n)
{
    for (int i = 0; i < n; i++) fputc((v >> (8 * i)) & 0xFF, f);
}

static int write_wav(const char *path, const int16_t *s, int n)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return -1; }
    fwrite("RIFF", 1, 4, f); put_le(f, 36 + 2 * n, 4); fwrite("WAVEfmt ", 1, 8, f);
    put_le(f, 16, 4); put_le(f, 1, 2); put_le(f, 1, 2); put_le(f, RATE, 4);
    put_le(f, RATE * 2, 4); put_le(f, 2, 2); put_le(f, 16, 2);
    fwrite("data", 1, 4, f); put_le(f, 2 * n, 4);
    for (int i = 0; i < n; i++) put_le(f, (uint16_t) s[i], 2);
    fclose(f);
    return 0;
}

/* Reads the data chunk of a 16-bit mono WAV; returns the sample count or -1. */
static int read_wav(const char *path, int16_t *s, int max)
{
    unsigned char h[12], ch[8];
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return -1; }
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) { fclose(f); return -1; }
    for (int guard = 0; guard < 64; guard++) {
        if (fread(ch, 1, 8, f) != 8) break;
        unsigned len = ch[4] | ch[5] << 8 | ch[6] << 16 | (unsigned) ch[7] << 24;
        if (memcmp(ch, "data", 4) == 0) {
            int n = 0;
            unsigned char b[2];
            while (n < max && (unsigned) n * 2 < len && fread(b, 1, 2, f) == 2)
                s[n++] = (int16_t) (b[0] | b[1] << 8);
            fclose(f);
            return n;
        }
        fseek(f, len + (len & 1), SEEK_CUR);
    }
    fclose(f);
    return -1;
}

static int gen(int argc, char **argv)
{
    int std = standard_of(argv[2]);
    float level = (float) atof(argv[4]);
    const char *number = NULL, *absent = NULL, *called = NULL;
    int sdmf = 0, lead_ms = 200;
    for (int i = 5; i < argc; i++) {
        if (strncmp(argv[i], "number=", 7) == 0) number = argv[i] + 7;
        else if (strncmp(argv[i], "absent=", 7) == 0) absent = argv[i] + 7;
        else if (strncmp(argv[i], "called=", 7) == 0) called = argv[i] + 7;
        else if (strcmp(argv[i], "sdmf=1") == 0) sdmf = 1;
        else if (strncmp(argv[i], "lead_ms=", 8) == 0) lead_ms = atoi(argv[i] + 8);
        else { fprintf(stderr, "unknown parameter %s\n", argv[i]); return 2; }
    }
    adsi_tx_state_t *tx = adsi_tx_init(NULL, std);
    uint8_t msg[256];
    int len;
    if (std == ADSI_STANDARD_JCLIP) {
        len = adsi_add_field(tx, msg, -1, JCLIP_MDMF_CALLERID, NULL, 0);
        if (number) len = adsi_add_field(tx, msg, len, JCLIP_CALLER_NUMBER, (const uint8_t *) number, strlen(number));
        if (absent) len = adsi_add_field(tx, msg, len, JCLIP_ABSENCE, (const uint8_t *) absent, strlen(absent));
        if (called) len = adsi_add_field(tx, msg, len, JCLIP_DIALED_NUMBER, (const uint8_t *) called, strlen(called));
    } else if (sdmf) {
        char body[64];
        snprintf(body, sizeof body, "01010000%s", number ? number : (absent ? absent : "O"));
        len = adsi_add_field(tx, msg, -1, CLASS_SDMF_CALLERID, NULL, 0);
        len = adsi_add_field(tx, msg, len, 0, (const uint8_t *) body, strlen(body));
    } else {
        len = adsi_add_field(tx, msg, -1, CLASS_MDMF_CALLERID, NULL, 0);
        if (number) len = adsi_add_field(tx, msg, len, MCLASS_CALLER_NUMBER, (const uint8_t *) number, strlen(number));
        if (called) len = adsi_add_field(tx, msg, len, MCLASS_DIALED_NUMBER, (const uint8_t *) called, strlen(called));
        if (absent) len = adsi_add_field(tx, msg, len, MCLASS_ABSENCE1, (const uint8_t *) absent, strlen(absent));
    }
    /* spandsp transmits at -14 dBm0 by default; set the level asked for */
    fsk_tx_power(&tx->fsktx, level);
    if (adsi_tx_put_message(tx, msg, len) <= 0) { fprintf(stderr, "message rejected\n"); return 1; }
    /* bits on the line: preamble + characters (start + 8 + stop bits) + postamble */
    int bits = tx->preamble_len + tx->preamble_ones_len + tx->postamble_ones_len
             + tx->msg_len * (9 + tx->stop_bits) + 10;
    int n_sig = bits * RATE / 1200 + 1;
    int lead = lead_ms * RATE / 1000;
    int total = lead + n_sig + RATE / 5;           /* 200 ms of quiet after */
    if (total > MAX_SAMPLES) { fprintf(stderr, "signal too long\n"); return 1; }
    int16_t *s = calloc(total, sizeof *s);
    for (int done = 0, guard = 0; done < n_sig && guard < MAX_SAMPLES; guard++) {
        int want = n_sig - done < 160 ? n_sig - done : 160;
        int got = adsi_tx(tx, s + lead + done, want);
        if (got <= 0) break;
        done += got;
    }
    int rc = write_wav(argv[3], s, total);
    free(s);
    adsi_tx_free(tx);
    return rc ? 1 : 0;
}

static adsi_rx_state_t *rx;

static void put_msg(void *user_data, const uint8_t *msg, int len)
{
    uint8_t type;
    const uint8_t *body;
    int flen, pos = -1;
    printf("{\"hex\":\"");
    for (int i = 0; i < len; i++) printf("%02x", msg[i]);
    printf("\",\"fields\":[");
    pos = adsi_next_field(rx, msg, len, pos, &type, &body, &flen);
    int first = 1, guard = 0;
    printf("%s", "");
    int msg_type = pos >= 0 ? type : -1;
    while (pos >= 0 && guard++ < 256) {
        pos = adsi_next_field(rx, msg, len, pos, &type, &body, &flen);
        if (pos < 0) break;
        printf("%s[%d,\"", first ? "" : ",", type);
        for (int i = 0; i < flen; i++) printf("%02x", body[i]);
        printf("\"]");
        first = 0;
    }
    printf("],\"type\":%d,\"end\":%d}\n", msg_type, pos);
    fflush(stdout);
}

static int dec(char **argv)
{
    static int16_t s[MAX_SAMPLES];
    int n = read_wav(argv[3], s, MAX_SAMPLES);
    if (n < 0) { fprintf(stderr, "cannot read %s\n", argv[3]); return 1; }
    rx = adsi_rx_init(NULL, standard_of(argv[2]), put_msg, NULL);
    for (int i = 0; i < n; i += 160)
        adsi_rx(rx, s + i, n - i < 160 ? n - i : 160);
    adsi_rx_free(rx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "gen") == 0) return gen(argc, argv);
    if (argc == 4 && strcmp(argv[1], "dec") == 0) return dec(argv);
    fprintf(stderr, "usage: spandsp_adsi gen STANDARD OUT.wav LEVEL [number=..] [absent=..] [called=..] [sdmf=1]\n"
                    "       spandsp_adsi dec STANDARD IN.wav\n");
    return 2;
}
