/* simrunner.c: runs the stage firmware in simavr with its UART on a pseudo-terminal, and serves a small
 * line protocol on stdin/stdout (see docs/firmware.md) to read step counts and the servo timer and to drive
 * the limit and button pins.
 *
 *   simrunner [--fast] [--eeprom FILE] [--pins grbl] FIRMWARE.elf
 *
 * --pins grbl wires the Y limit switch to D10 (PB2), where stock GRBL 1.1 reads it, instead of our D11 (PB3)
 * (X D9 and Z D12 are the same on both), so stock GRBL's homing cycle can be run against the runner.
 *
 * First stdout line: "PTY /dev/pts/N". Then one reply line per command line read from stdin.
 * simavr's own chatter goes to stderr. Commands are executed by the simulation thread between instructions,
 * so they never race the simulated CPU.
 *
 * The pseudo-terminal bridge is the runner's own (openpty, raw, non-blocking master, serviced by a cycle timer
 * in the simulation thread: one byte per byte time at 115200 baud 8N1, as a wire would). simavr 1.6's
 * uart_pty part was tried first and deadlocks on input bursts: its thread reads up to 511 bytes, stores
 * what fits in its FIFO, and then only moves the rest when select() reports an fd, which it never does
 * while that rest is pending and the AVR sends nothing; a 600-byte line stalled the link for good.
 * The shared /tmp/simavr-uart0 link is never touched.
 *
 * avr_reset() (a watchdog reset) deletes every cycle timer, the UART pump included, and resets the ports: a small
 * IO module of the runner hears the reset, re-arms the pump and drives the limit and button pins again, so a
 * rebooted chip keeps its link, as real hardware does. RESETS? counts these resets. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avr_eeprom.h"
#include "avr_uart.h"
#include "avr_ioport.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"

#define N_AXIS 3
#define EEPROM_BYTES 1024

/* ATmega328P data-space addresses of the Timer1 registers (datasheet, register summary). */
#define REG_TCCR1A 0x80
#define REG_TCCR1B 0x81
#define REG_ICR1L 0x86
#define REG_OCR1AL 0x88
#define REG_OCR1BL 0x8A

/* Pin map, as firmware/src/cpu_map.h. */
static const int step_pin[N_AXIS] = {2, 3, 4};   /* port D */
static const int dir_pin[N_AXIS] = {5, 6, 7};    /* port D */
static int limit_pin[N_AXIS] = {1, 3, 4};        /* port B; --pins grbl: {1, 2, 4} */
#define BUTTON_PORT 'C'
#define BUTTON_PIN 2

typedef struct {
    int enabled;
    long at;       /* net steps where the switch closes */
    int negative;  /* closes at net <= at (1) or net >= at (0) */
    int closed;
} auto_switch_t;

static avr_t *avr;
static int pty_master = -1, pty_slave = -1;
static char pty_name[128];
static FILE *out;   /* our replies: the original stdout */
static long net_steps[N_AXIS], pulses[N_AXIS];
static int step_level[N_AXIS], dir_level[N_AXIS];
static int limit_forced[N_AXIS];   /* pressed by a LIMIT command */
static auto_switch_t switches[N_AXIS];
static const char *eeprom_path;
static avr_cycle_count_t busy_cycles, total_cycles;   /* since the last LOAD? */

/* One-slot mailbox between the stdin thread and the simulation thread. */
static pthread_mutex_t box_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t box_done = PTHREAD_COND_INITIALIZER;
static atomic_int box_pending;
static char box_cmd[256], box_reply[256];

/* Bytes between the pty and the AVR's UART, touched only by the simulation thread. */
#define BRIDGE_BUF 4096
static uint8_t rx_buf[BRIDGE_BUF], tx_buf[BRIDGE_BUF];
static size_t rx_len, rx_pos, tx_len;
static avr_irq_t *uart_input;
static avr_cycle_count_t cycles_per_byte;
static int button_level = 1;        /* the button pin as driven (1 = open) */
static long resets;                 /* avr_reset() calls after start-up (watchdog resets) */
static int redrive_pins;            /* a reset happened: drive the inputs again at the next pump */

static int force_pins;   /* set while re-driving after a reset: the pin IRQs still hold their old values */

static void drive_pin(char port, int pin, int level)
{
    avr_ioport_external_t ext = {.name = (unsigned long)port, .mask = 1u << pin,
                                 .value = (unsigned long)(level ? 1u << pin : 0u)};
    avr_ioctl(avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(port), &ext);
    avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(port), pin);
    /* avr_reset() zeroed the PIN registers but not the IRQ values, and a raise of an unchanged value is
     * filtered out: make it a change so the level reaches the register again */
    if (force_pins) irq->value = level ? 0 : 1;
    avr_raise_irq(irq, (uint32_t)level);
}

static void update_limit(int axis)
{
    int pressed = limit_forced[axis] || (switches[axis].enabled && switches[axis].closed);
    drive_pin('B', limit_pin[axis], pressed ? 0 : 1);   /* a closed switch pulls the input low */
}

static void check_switch(int axis)
{
    auto_switch_t *s = &switches[axis];
    if (!s->enabled) return;
    int closed = s->negative ? net_steps[axis] <= s->at : net_steps[axis] >= s->at;
    if (closed != s->closed) {
        s->closed = closed;
        update_limit(axis);
    }
}

static void step_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    int axis = (int)(intptr_t)param;
    if (value && !step_level[axis]) {
        pulses[axis]++;
        net_steps[axis] += dir_level[axis] ? -1 : 1;   /* direction pin high = toward minus */
        check_switch(axis);
    }
    step_level[axis] = value != 0;
}

static void dir_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    dir_level[(int)(intptr_t)param] = value != 0;
}

static unsigned reg16(unsigned low_addr)
{
    return avr->data[low_addr] | ((unsigned)avr->data[low_addr + 1] << 8);
}

static void servo_reply(char *reply, size_t n)
{
    static const unsigned prescale[8] = {0, 1, 8, 64, 256, 1024, 0, 0};
    unsigned a = avr->data[REG_TCCR1A], b = avr->data[REG_TCCR1B];
    unsigned wgm = (a & 3u) | ((b >> 1) & 0xCu);
    unsigned div = prescale[b & 7u];
    unsigned com1b = (a >> 4) & 3u;
    unsigned top = wgm == 14 ? reg16(REG_ICR1L) : wgm == 15 ? reg16(REG_OCR1AL) : 0;
    if (div == 0 || top == 0 || com1b != 2) {
        snprintf(reply, n, "SERVO off");
        return;
    }
    double tick_us = div * 1e6 / avr->frequency;
    snprintf(reply, n, "SERVO %.2f %.2f", (reg16(REG_OCR1BL) + 1) * tick_us, (top + 1) * tick_us);
}

static int axis_index(const char *word)
{
    if (word[0] >= 'x' && word[0] <= 'z' && word[1] == '\0') return word[0] - 'x';
    return -1;
}

static void save_eeprom(void)
{
    if (!eeprom_path) return;
    avr_eeprom_desc_t d = {.ee = NULL, .offset = 0, .size = EEPROM_BYTES};
    avr_ioctl(avr, AVR_IOCTL_EEPROM_GET, &d);
    FILE *f = fopen(eeprom_path, "wb");
    if (!f || !d.ee || fwrite(d.ee, 1, EEPROM_BYTES, f) != EEPROM_BYTES) {
        fprintf(stderr, "simrunner: cannot save EEPROM to %s: %s\n", eeprom_path, strerror(errno));
    }
    if (f) fclose(f);
}

static void load_eeprom(void)
{
    uint8_t buf[EEPROM_BYTES];
    FILE *f = fopen(eeprom_path, "rb");
    if (!f) return;   /* a new file: start blank, save at QUIT */
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    avr_eeprom_desc_t d = {.ee = buf, .offset = 0, .size = (uint32_t)n};
    avr_ioctl(avr, AVR_IOCTL_EEPROM_SET, &d);
}

/* Runs in the simulation thread. Returns 1 when the runner must exit. */
static int execute(const char *cmd, char *reply, size_t n)
{
    char w1[32] = "", w2[32] = "", w3[32] = "";
    int words = sscanf(cmd, "%31s %31s %31s", w1, w2, w3);
    if (words >= 1 && strcmp(w1, "STEPS?") == 0) {
        snprintf(reply, n, "STEPS %ld %ld %ld", net_steps[0], net_steps[1], net_steps[2]);
    } else if (words >= 1 && strcmp(w1, "PULSES?") == 0) {
        snprintf(reply, n, "PULSES %ld %ld %ld", pulses[0], pulses[1], pulses[2]);
    } else if (words >= 1 && strcmp(w1, "SERVO?") == 0) {
        servo_reply(reply, n);
    } else if (words == 2 && strcmp(w1, "PEEK") == 0) {
        char *end = NULL;
        unsigned long addr = strtoul(w2, &end, 0);
        if (end && *end == '\0' && addr <= avr->ramend) {
            snprintf(reply, n, "PEEK 0x%04lx 0x%02x", addr, avr->data[addr]);
        } else {
            snprintf(reply, n, "ERR PEEK needs a data-space address 0..0x%04x", (unsigned)avr->ramend);
        }
    } else if (words >= 1 && strcmp(w1, "LOAD?") == 0) {
        snprintf(reply, n, "LOAD %llu %llu", (unsigned long long)busy_cycles, (unsigned long long)total_cycles);
        busy_cycles = total_cycles = 0;
    } else if (words >= 1 && strcmp(w1, "RESETS?") == 0) {
        snprintf(reply, n, "RESETS %ld", resets);
    } else if (words >= 1 && strcmp(w1, "CYCLES?") == 0) {
        snprintf(reply, n, "CYCLES %llu", (unsigned long long)avr->cycle);
    } else if (words == 3 && strcmp(w1, "LIMIT") == 0 && axis_index(w2) >= 0 &&
               (strcmp(w3, "0") == 0 || strcmp(w3, "1") == 0)) {
        limit_forced[axis_index(w2)] = w3[0] == '1';
        update_limit(axis_index(w2));
        snprintf(reply, n, "OK");
    } else if (words == 2 && strcmp(w1, "BUTTON") == 0 && (strcmp(w2, "0") == 0 || strcmp(w2, "1") == 0)) {
        button_level = w2[0] == '1' ? 0 : 1;
        drive_pin(BUTTON_PORT, BUTTON_PIN, button_level);
        snprintf(reply, n, "OK");
    } else if (words >= 3 && strcmp(w1, "SWITCH") == 0 && axis_index(w2) >= 0) {
        int axis = axis_index(w2);
        char side[8] = "";
        long at = 0;
        if (strcmp(w3, "off") == 0) {
            switches[axis].enabled = 0;
            update_limit(axis);
            snprintf(reply, n, "OK");
        } else if (sscanf(cmd, "%*s %*s %ld %7s", &at, side) == 2 && (side[0] == '-' || side[0] == '+') &&
                   side[1] == '\0') {
            switches[axis] = (auto_switch_t){.enabled = 1, .at = at, .negative = side[0] == '-', .closed = -1};
            check_switch(axis);
            snprintf(reply, n, "OK");
        } else {
            snprintf(reply, n, "ERR usage: SWITCH x|y|z <net steps> -|+  or  SWITCH x|y|z off");
        }
    } else if (words >= 1 && strcmp(w1, "QUIT") == 0) {
        save_eeprom();
        snprintf(reply, n, "BYE");
        return 1;
    } else {
        snprintf(reply, n, "ERR unknown command '%.60s' (STEPS? PULSES? SERVO? CYCLES? LOAD? RESETS? PEEK LIMIT BUTTON SWITCH QUIT)",
                 cmd);
    }
    return 0;
}

static void *stdin_thread(void *arg)
{
    (void)arg;
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        pthread_mutex_lock(&box_lock);
        snprintf(box_cmd, sizeof(box_cmd), "%s", line);
        atomic_store(&box_pending, 1);
        while (atomic_load(&box_pending) == 1) pthread_cond_wait(&box_done, &box_lock);
        fprintf(out, "%s\n", box_reply);
        fflush(out);
        int quit = atomic_load(&box_pending) == 3;
        atomic_store(&box_pending, 0);
        pthread_mutex_unlock(&box_lock);
        if (quit) return NULL;
    }
    /* stdin closed: the parent is gone, stop as if told QUIT */
    pthread_mutex_lock(&box_lock);
    snprintf(box_cmd, sizeof(box_cmd), "QUIT");
    atomic_store(&box_pending, 1);
    pthread_mutex_unlock(&box_lock);
    return NULL;
}

static int serve_mailbox(void)
{
    if (atomic_load_explicit(&box_pending, memory_order_acquire) != 1) return 0;
    pthread_mutex_lock(&box_lock);
    int quit = execute(box_cmd, box_reply, sizeof(box_reply));
    atomic_store(&box_pending, quit ? 3 : 2);
    pthread_cond_signal(&box_done);
    pthread_mutex_unlock(&box_lock);
    return quit;
}

static void flush_tx(void)
{
    if (tx_len == 0) return;
    ssize_t n = write(pty_master, tx_buf, tx_len);
    if (n > 0) {
        memmove(tx_buf, tx_buf + n, tx_len - (size_t)n);
        tx_len -= (size_t)n;
    }
}

/* The AVR sent a byte. If nobody reads the pty for 4 KB, later bytes are dropped (a host that is not there). */
static void uart_output_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (tx_len < BRIDGE_BUF) tx_buf[tx_len++] = (uint8_t)value;
    flush_tx();
}

static void set_uart_flags(void)
{
    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)AVR_UART_FLAG_STDIO;   /* binary traffic: no console echo */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
}

static void drive_inputs(void)
{
    for (int a = 0; a < N_AXIS; a++) update_limit(a);
    drive_pin(BUTTON_PORT, BUTTON_PIN, button_level);
}

/* Once per byte time: hand the UART the next received byte, reading the pty when the buffer is used up. */
static avr_cycle_count_t pump_uart(struct avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)a;
    (void)param;
    if (redrive_pins) {   /* after a reset, once every module (ports, UART) has reset itself */
        redrive_pins = 0;
        set_uart_flags();
        force_pins = 1;
        drive_inputs();
        force_pins = 0;
    }
    if (rx_pos == rx_len) {
        ssize_t n = read(pty_master, rx_buf, sizeof(rx_buf));
        rx_len = n > 0 ? (size_t)n : 0;
        rx_pos = 0;
    }
    if (rx_pos < rx_len) {
        avr_raise_irq(uart_input, rx_buf[rx_pos++]);
        flush_tx();
        return when + cycles_per_byte;
    }
    flush_tx();
    /* nothing to send: look at the pty again in 100 us rather than every byte time (saves host CPU) */
    return when + avr->frequency / 10000;
}

static int open_pty(void)
{
    if (openpty(&pty_master, &pty_slave, pty_name, NULL, NULL) < 0) {
        fprintf(stderr, "simrunner: openpty failed: %s\n", strerror(errno));
        return -1;
    }
    struct termios tio;
    for (int i = 0; i < 2; i++) {
        int fd = i ? pty_slave : pty_master;
        tcgetattr(fd, &tio);
        cfmakeraw(&tio);
        tcsetattr(fd, TCSANOW, &tio);
    }
    /* the slave stays open here too, so the master never sees a hang-up while the host reconnects */
    fcntl(pty_master, F_SETFL, fcntl(pty_master, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* avr_reset() runs this after it has cleared the cycle timers: put the pump back. */
static void runner_reset(avr_io_t *io)
{
    (void)io;
    resets++;
    redrive_pins = 1;
    avr_cycle_timer_register(avr, cycles_per_byte, pump_uart, NULL);
}

static avr_io_t runner_io = {.kind = "tppscan-runner", .reset = runner_reset};

static void connect_uart(void)
{
    set_uart_flags();
    uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_output_hook,
                            NULL);
    cycles_per_byte = avr->frequency / (115200 / 10);
    avr_cycle_timer_register(avr, cycles_per_byte, pump_uart, NULL);
    avr_register_io(avr, &runner_io);   /* after avr_init's own reset: only later resets reach it */
}

static void no_sleep(avr_t *a, avr_cycle_count_t how_long)
{
    (void)a;
    (void)how_long;   /* real-time pacing, when asked for, is done in the run loop */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pace(double t0)
{
    double ahead = (double)avr->cycle / avr->frequency - (now_s() - t0);
    if (ahead > 0.001) {
        struct timespec ts = {.tv_sec = (time_t)ahead, .tv_nsec = (long)((ahead - (time_t)ahead) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static void connect_pins(void)
{
    for (int a = 0; a < N_AXIS; a++) {
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), step_pin[a]), step_hook,
                                (void *)(intptr_t)a);
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), dir_pin[a]), dir_hook,
                                (void *)(intptr_t)a);
    }
    drive_inputs();   /* open switches and button: the lines rest high */
}

int main(int argc, char **argv)
{
    int realtime = 1;
    const char *elf = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fast") == 0) realtime = 0;
        else if (strcmp(argv[i], "--eeprom") == 0 && i + 1 < argc) eeprom_path = argv[++i];
        else if (strcmp(argv[i], "--pins") == 0 && i + 1 < argc && strcmp(argv[i + 1], "grbl") == 0) {
            limit_pin[1] = 2;   /* GRBL 1.1's cpu_map.h: Y_LIMIT_BIT 2 (D10) */
            i++;
        }
        else if (argv[i][0] != '-' && !elf) elf = argv[i];
        else {
            fprintf(stderr, "usage: %s [--fast] [--eeprom FILE] [--pins grbl] FIRMWARE.elf\n", argv[0]);
            return 2;
        }
    }
    if (!elf) {
        fprintf(stderr, "usage: %s [--fast] [--eeprom FILE] [--pins grbl] FIRMWARE.elf\n", argv[0]);
        return 2;
    }
    /* keep our stdout for replies; anything simavr prints goes to stderr */
    out = fdopen(dup(STDOUT_FILENO), "w");
    dup2(STDERR_FILENO, STDOUT_FILENO);

    elf_firmware_t fw;
    memset(&fw, 0, sizeof(fw));
    if (elf_read_firmware(elf, &fw) != 0) {
        fprintf(stderr, "simrunner: cannot read firmware %s\n", elf);
        return 1;
    }
    strcpy(fw.mmcu, "atmega328p");
    fw.frequency = 16000000;
    avr = avr_make_mcu_by_name(fw.mmcu);
    if (!avr) {
        fprintf(stderr, "simrunner: simavr lacks the atmega328p core\n");
        return 1;
    }
    avr_init(avr);
    avr_load_firmware(avr, &fw);
    avr->sleep = no_sleep;
    if (eeprom_path) load_eeprom();

    if (open_pty() != 0) return 1;
    connect_uart();
    connect_pins();
    fprintf(out, "PTY %s\n", pty_name);
    fflush(out);

    pthread_t reader;
    pthread_create(&reader, NULL, stdin_thread, NULL);
    double t0 = now_s();
    avr_cycle_count_t next_pace = 0;
    int state = cpu_Running;
    for (;;) {
        avr_cycle_count_t before = avr->cycle;
        int was = avr->state;
        state = avr_run(avr);
        total_cycles += avr->cycle - before;
        if (was != cpu_Sleeping) busy_cycles += avr->cycle - before;
        if (state == cpu_Done || state == cpu_Crashed) break;
        if (serve_mailbox()) break;
        if (realtime && avr->cycle >= next_pace) {
            pace(t0);
            next_pace = avr->cycle + avr->frequency / 1000;
        }
    }
    if (state == cpu_Done || state == cpu_Crashed) {
        fprintf(out, "DEAD %s at pc 0x%04x\n", state == cpu_Crashed ? "crashed" : "done", avr->pc);
        fflush(out);
    }
    if (state != cpu_Done && state != cpu_Crashed) pthread_join(reader, NULL);   /* it prints BYE */
    return state == cpu_Crashed ? 3 : 0;
}
