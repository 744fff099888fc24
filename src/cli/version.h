/* The one definition of Backflow's version: `backflow --version`, the man
 * page and the Makefile (`make install` names nothing else) read it here. */
#ifndef BF_VERSION_H
#define BF_VERSION_H

#define BF_VERSION "0.1.0"

#endif
