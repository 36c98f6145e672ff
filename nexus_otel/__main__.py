from nexus_otel.cli import main

main()
