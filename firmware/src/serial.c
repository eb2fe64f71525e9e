/* serial.c: UART0 receive/transmit rings. The real-time bytes ('?', '!', '~', 0x18 and every byte >= 0x80) are
 * taken here in the receive interrupt and never enter a line, as in GRBL 1.1. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <avr/wdt.h>
#include "config.h"
#include "override.h"
#include "serial.h"
#include "stepper.h"
#include "system.h"

static uint8_t rx_buf[RX_BUFFER_SIZE];
static volatile uint8_t rx_head, rx_tail;
static uint8_t tx_buf[TX_BUFFER_SIZE];
static volatile uint8_t tx_head, tx_tail;

void serial_init(void)
{
    /* U2X with UBRR 16 gives 117647 baud at 16 MHz (2.1 % off 115200), the setting GRBL and Arduino use */
    UCSR0A = (1 << U2X0);
    UBRR0 = (uint16_t)((F_CPU / (8UL * BAUD_RATE)) - 1);
    UCSR0B = (1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0);
    UCSR0C = (1 << UCSZ01) | (1 << UCSZ00);
}

ISR(USART_RX_vect)
{
    uint8_t c = UDR0;
    switch (c) {
    case '?': sys_rt |= RT_STATUS; return;
    case '!': sys_rt |= RT_HOLD; return;
    case '~': sys_rt |= RT_RESUME; return;
    case 0x18:
        st_kill();   /* stop pulses now; the main loop decides whether position was lost */
        sys_rt |= RT_RESET;
        return;
    default: break;
    }
    if (c >= 0x80) {
        /* GRBL 1.1's extended real-time set: jog cancel and overrides act, the rest (safety door, spindle stop,
         * coolant, unassigned) is dropped: never stored, so it can never corrupt the line around it */
        if (c == 0x85) sys_rt |= RT_JOG_CANCEL;
        else if (c >= OVR_FIRST_BYTE && c <= OVR_LAST_BYTE) sys_rt_ovr |= (uint16_t)(1u << (c - OVR_FIRST_BYTE));
        return;
    }
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_BUFFER_SIZE - 1));
    if (next != rx_tail) {   /* a full buffer drops the byte, as a real UART overrun would */
        rx_buf[rx_head] = c;
        rx_head = next;
    }
}

int16_t serial_read(void)
{
    uint8_t t = rx_tail;
    if (t == rx_head) {
        return -1;
    }
    uint8_t c = rx_buf[t];
    rx_tail = (uint8_t)((t + 1) & (RX_BUFFER_SIZE - 1));
    return c;
}

uint8_t serial_rx_free(void)
{
    return (uint8_t)((rx_tail - rx_head - 1) & (RX_BUFFER_SIZE - 1));
}

void serial_reset_rx(void)
{
    rx_tail = rx_head;
}

ISR(USART_UDRE_vect)
{
    uint8_t t = tx_tail;
    UDR0 = tx_buf[t];
    tx_tail = t = (uint8_t)((t + 1) & (TX_BUFFER_SIZE - 1));
    if (t == tx_head) {
        UCSR0B &= (uint8_t)~(1 << UDRIE0);
    }
}

void serial_write(uint8_t c)
{
    uint8_t next = (uint8_t)((tx_head + 1) & (TX_BUFFER_SIZE - 1));
    while (next == tx_tail) {
        wdt_reset();   /* the transmitter drains 128 bytes in 11 ms */
    }
    tx_buf[tx_head] = c;
    tx_head = next;
    UCSR0B |= (1 << UDRIE0);
}

void serial_print_P(const char *s)
{
    char c;
    while ((c = (char)pgm_read_byte(s++)) != '\0') {
        serial_write((uint8_t)c);
    }
}

void serial_print(const char *s)
{
    while (*s) {
        serial_write((uint8_t)*s++);
    }
}
