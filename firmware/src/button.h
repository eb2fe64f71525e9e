/* button.h: the debounced user button on A2; its changes are pushed to the host as [MSG:BUTTON ...]. */
#ifndef BUTTON_H
#define BUTTON_H
#include <stdint.h>

enum { BUTTON_NONE = 0, BUTTON_PRESSED, BUTTON_RELEASED };

void button_init(void);
/* Called every millisecond from the system tick. */
void button_tick(void);
/* The last debounced change not yet reported, and clear it. */
uint8_t button_take_event(void);

#endif
