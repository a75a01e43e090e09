"""eie.hw"""
