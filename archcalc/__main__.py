from archcalc.cli.app import main

main()
